"""Command-line overrides: ``a.b.c=value`` applied to a loaded recipe.

The key is a dotted path; a number names a list item (``data.datasets.0.weight=2``; the index
one past the end appends an item). The value is read as YAML, so ``[a, b]``, ``null``, ``true``
and numbers work; the schema then decides the type (``1e-4`` is text to YAML and becomes a float
for a float field). Missing sections on the way are created. Each value remembers the override
that set it, so errors name it: "command-line override `train.lrr=1e-4`".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from tune.config.problems import Problem
from tune.config.positions import Position, PositionMap, join
from tune.config.yaml_positions import UnreadableValue, YamlValue, parse_scalar_text

EXAMPLE = "`key.path=value`, like `train.lr=1e-4`"


@dataclass(frozen=True)
class Override:
    """One parsed ``key=value``: the dotted ``parts``, the YAML ``value`` and the ``position`` naming it."""

    parts: tuple[str, ...]
    value: YamlValue
    position: Position


def where(text: str) -> Position:
    """The position errors use for override ``text`` (cut to 100 characters: a line to read)."""
    return Position(f"command-line override `{text if len(text) <= 100 else text[:97] + '...'}`")


def parse_overrides(texts: list[str] | tuple[str, ...]) -> tuple[list[Override], list[Problem]]:
    """The well-formed overrides, and a problem for each malformed one (no `=`, empty key part, bad YAML)."""
    parsed, problems = [], []
    for text in texts:
        key, sep, raw = text.partition("=")
        parts = tuple(part.strip() for part in key.split("."))
        if not sep or not all(parts):
            problems.append(Problem(where(text), None, "malformed override", EXAMPLE))
            continue
        if parts[0] == "base":
            problems.append(Problem(where(text), "base", "`base` cannot be overridden", "`base:` written in a recipe file"))
            continue
        try:
            value = parse_scalar_text(raw)
        except UnreadableValue as err:
            problems.append(Problem(where(text), key.strip(), f"the value {raw if len(raw) <= 60 else raw[:57] + '...'!r}: {err}"))
            continue
        except yaml.YAMLError:
            problems.append(Problem(where(text), key.strip(), f"the value {raw!r} is not valid YAML", "a YAML value (quote text with special characters)"))
            continue
        parsed.append(Override(parts, value, where(text)))
    return parsed, problems


def apply_overrides(tree: dict, positions: PositionMap, overrides: list[Override]) -> list[Problem]:
    """Apply ``overrides`` in order to ``tree`` (in place), recording their positions; the problems of those that cannot apply."""
    problems = []
    for override in overrides:
        problem = _apply(tree, positions, override)
        if problem is not None:
            problems.append(problem)
    return problems


def _apply(tree: dict, positions: PositionMap, override: Override) -> Problem | None:
    node: Any = tree
    path = ""
    for depth, part in enumerate(override.parts):
        key: str | int = part
        if isinstance(node, list):
            key = _index(part, len(node))
            if key is None:
                what = f"no item {part!r} in a list of {len(node)}"
                return Problem(override.position, join(path, part), what, f"an index from 0 to {len(node)} ({len(node)} appends)")
            if key == len(node):
                node.append(None)
        path = join(path, key)
        if depth == len(override.parts) - 1:
            node[key] = override.value
            break
        child = node.get(key) if isinstance(node, dict) else node[key]
        if child is None:
            node[key] = {}
            positions.record(path, override.position, override.position)
        elif not isinstance(child, (dict, list)):
            return Problem(override.position, path, "is a single value, not a section", f"a key path that ends at `{path}`")
        node = node[key]
    positions.drop(path)
    _record_all(positions, path, override.value, override.position)
    return None


def _index(part: str, length: int) -> int | None:
    if not part.isdigit():
        return None
    index = int(part)
    return index if index <= length else None


def _record_all(positions: PositionMap, path: str, value: Any, position: Position) -> None:
    positions.record(path, position, position)
    if isinstance(value, dict):
        for key, item in value.items():
            _record_all(positions, join(path, str(key)), item, position)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _record_all(positions, join(path, index), item, position)
