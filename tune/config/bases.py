"""Finding recipe files and following ``base:`` chains.

A recipe may start with ``base: other.yaml``: the other recipe is loaded first and this one is
deep-merged over it (see ``tune.config.deep_merge``). ``other.yaml`` is read relative to the folder of
the recipe that names it; when no such file exists there, it may name a shipped recipe
(``tiny/sft-lora`` or ``tiny/sft-lora.yaml``). Chains are allowed; a chain that comes back to a
recipe already in it is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tune.config.problems import Problem, RecipeError, closest
from tune.config.deep_merge import deep_merge
from tune.config.positions import Position, PositionMap
from tune.config.yaml_positions import display_path, read_yaml_file
from tune.resources import shipped_recipe_names, shipped_recipe_path

EXPECTED_RECIPE = "a recipe YAML file or a shipped recipe name (see `tune ls`)"


def find_recipe(ref: str, folder: Path) -> Path | None:
    """The recipe file ``ref`` names: ``folder/ref`` if that is a file, else the shipped recipe ``ref``, else None."""
    local = folder / Path(ref).expanduser()
    if local.is_file():
        return Path(os.path.abspath(local))
    return shipped_recipe_path(ref)


def suggest_recipe(ref: str, folder: Path, exclude: Path | None = None) -> str | None:
    """A recipe name close to ``ref`` among the YAML files in ``folder`` (but ``exclude``) and the shipped recipes."""
    local = [p.name for p in folder.glob("*.yaml") if p != exclude] if folder.is_dir() else []
    shipped = shipped_recipe_names()
    return closest(ref, local + shipped + [f"{name}.yaml" for name in shipped])


def find_top_recipe(ref: str | Path) -> Path:
    """The recipe file a user named on the command line; a RecipeError (with a suggestion) when there is none."""
    found = find_recipe(str(ref), Path.cwd())
    if found is None:
        problem = Problem(Position(str(ref)), None, "no such recipe file", EXPECTED_RECIPE, suggest_recipe(str(ref), Path.cwd()))
        raise RecipeError([problem])
    return found


def load_with_bases(path: Path) -> tuple[dict, PositionMap]:
    """Recipe ``path`` with its ``base:`` chain merged in (the ``base`` key removed) and its positions.

    Refuses, with a RecipeError: a file that is not a mapping, a ``base`` that is not text or names
    no recipe, a chain with a cycle, and every problem of ``read_yaml_file``.
    """
    return _load(Path(os.path.abspath(path)), ())


def _load(path: Path, chain: tuple[Path, ...]) -> tuple[dict, PositionMap]:
    data, positions = read_yaml_file(path)
    _require_mapping(data, positions)
    if "base" not in data:
        return data, positions
    ref = data.pop("base")
    where = positions.values["base"]
    positions.drop("base")
    if ref is None:
        return data, positions
    base_path = _resolve_base(ref, path, where)
    if base_path in chain or base_path == path:
        loop = " -> ".join(display_path(p) for p in (*chain, path, base_path))
        raise RecipeError([Problem(where, "base", f"the `base` chain loops: {loop}", "a chain of bases that ends")])
    parent, parent_positions = _load(base_path, (*chain, path))
    return deep_merge(parent, parent_positions, data, positions)


def _require_mapping(data: Any, positions: PositionMap) -> None:
    if isinstance(data, dict):
        return
    if data is None:
        kind = "empty"
    else:
        kind = "a list" if isinstance(data, list) else f"a single value ({data!r})"
    raise RecipeError([Problem(positions.root, None, f"the recipe is {kind}", "a mapping of sections (model:, data:, train:, ...)")])


def _resolve_base(ref: Any, path: Path, where: Position) -> Path:
    if not isinstance(ref, str) or not ref.strip():
        raise RecipeError([Problem(where, "base", f"got {ref!r}", EXPECTED_RECIPE)])
    found = find_recipe(ref, path.parent)
    if found is None:
        what = f"no recipe '{ref}' next to {display_path(path)} nor among the shipped recipes"
        raise RecipeError([Problem(where, "base", what, EXPECTED_RECIPE, suggest_recipe(ref, path.parent, exclude=path))])
    return found

