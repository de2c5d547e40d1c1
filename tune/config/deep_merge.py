"""Deep merge of a child recipe over its ``base:``, positions included.

Rules: mappings merge key by key, recursively; anything else in the child (a scalar, a list,
an explicit ``null``) replaces the parent's value whole. Every value keeps the position of the
file that supplied it, so an error in an inherited value points into the base file.
"""

from __future__ import annotations

import copy
from tune.config.positions import PositionMap, join


def deep_merge(parent: dict, parent_pos: PositionMap, child: dict, child_pos: PositionMap) -> tuple[dict, PositionMap]:
    """``child`` merged over ``parent`` (neither is modified) and the merged positions.

    The merged root position is the child's: the child is the file the user named.
    """
    merged = copy.deepcopy(parent)
    positions = parent_pos.copy()
    positions.root = child_pos.root
    _merge_into(merged, child, "", positions, child_pos)
    return merged, positions


def _merge_into(target: dict, child: dict, path: str, positions: PositionMap, child_pos: PositionMap) -> None:
    for key, value in child.items():
        key_path = join(path, key)
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            if key_path in child_pos.keys:
                positions.record(key_path, child_pos.keys[key_path], child_pos.values[key_path])
            _merge_into(target[key], value, key_path, positions, child_pos)
            continue
        target[key] = copy.deepcopy(value)
        positions.drop(key_path)
        positions.copy_from(child_pos, key_path)

