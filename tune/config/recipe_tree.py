"""A recipe file as plain data: found, read with positions, ``base:`` chains merged, overrides applied, paths resolved.

The steps, each in its own module: find the file (``bases``), read YAML with positions
(``yaml_positions``), follow ``base:`` chains (``bases``, ``deep_merge``), apply ``key=value``
overrides (``overrides``), make paths absolute and fill in the default run folder (``paths``).
Schema validation (``validation``) and the checks that need presets, cards or the architecture
come after, in ``tune.recipe.load_recipe``, the one function callers use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tune.config.bases import find_top_recipe, load_with_bases
from tune.config.overrides import apply_overrides, parse_overrides
from tune.config.paths import resolve_paths
from tune.config.positions import PositionMap
from tune.config.problems import Problem


@dataclass
class RecipeTree:
    """The merged recipe data before validation: ``tree`` (plain dicts and lists, resolved in place by
    the checks), where each value was written (``positions``), the recipe ``file`` the user named,
    the ``overrides`` applied, and the ``problems`` found so far."""

    file: Path
    tree: dict
    positions: PositionMap
    overrides: tuple[str, ...] = ()
    problems: list[Problem] = field(default_factory=list)


def read_recipe_tree(path: str | Path, overrides: Iterable[str] = (), now: datetime | None = None) -> RecipeTree:
    """The recipe at ``path`` (a file relative to the current folder, or a shipped recipe name such as
    ``tiny/sft-lora``) with its bases, the ``key.path=value`` ``overrides`` and its paths resolved.
    ``now`` fixes the time stamp of a default ``output.dir`` (tests).

    Refuses with a RecipeError what stops reading altogether (no such file, bad YAML, a base chain
    that loops); every other problem is collected in ``problems``.
    """
    overrides = tuple(overrides)
    file = find_top_recipe(path)
    tree, positions = load_with_bases(file)
    parsed, problems = parse_overrides(overrides)
    problems += apply_overrides(tree, positions, parsed)
    problems += resolve_paths(tree, positions, file.stem, now or datetime.now())
    return RecipeTree(file, tree, positions, overrides, problems)
