"""``load_recipe``: from a recipe file and overrides to a validated, resolved Recipe.

The steps, each in its own module: find the file (``bases``), read YAML with positions
(``yaml_positions``), follow ``base:`` chains (``bases``, ``merge``), apply ``key=value``
overrides (``overrides``), resolve paths, presets and the output folder (``checks``), validate
against the schema (``validation``), then combinations the schema cannot see (LoRA targets the
architecture lacks: ``tune.models.adapters``; Liger: ``tune.models.liger_support``). Problems found by the last four steps are reported
together, in reading order, in one ``RecipeError``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from tune.config import checks
from tune.config.bases import find_top_recipe, load_with_bases
from tune.config.errors import Problem, RecipeError
from tune.config.loaded import LoadedRecipe
from tune.config.overrides import apply_overrides, parse_overrides
from tune.config.validation import validate


def load_recipe(path: str | Path, overrides: Iterable[str] = (), now: datetime | None = None) -> LoadedRecipe:
    """Load, merge, override, resolve and validate the recipe at ``path``.

    ``path`` is a recipe file (relative to the current folder) or a shipped recipe name
    (``tiny/sft-lora``). ``overrides`` are ``key.path=value`` texts. ``now`` fixes the time stamp
    of a default ``output.dir`` (tests). Refuses with a ``RecipeError`` listing every problem.
    """
    overrides = tuple(overrides)
    file = find_top_recipe(path)
    tree, positions = load_with_bases(file)
    parsed, problems = parse_overrides(overrides)
    problems += apply_overrides(tree, positions, parsed)
    problems += checks.resolve(tree, positions, file.stem, now)
    recipe, schema_problems = validate(tree, positions)
    problems += schema_problems
    if recipe is not None:
        from tune.models.adapters import lora_problems  # here: they import tune.config themselves
        from tune.models.liger_support import liger_problems

        problems += lora_problems(recipe, positions) + liger_problems(recipe, positions)
    if problems or recipe is None:
        raise RecipeError(reading_order(problems, positions.root.source))
    return LoadedRecipe(recipe, file, overrides, positions)


def reading_order(problems: list[Problem], top_source: str) -> list[Problem]:
    """``problems`` sorted as a person reads them: the named file first, by line; then base files; then overrides."""
    ranks: dict[str, int] = {top_source: 0}
    for problem in problems:
        if problem.position.line is not None:
            ranks.setdefault(problem.position.source, len(ranks))
    overrides_rank = len(ranks)

    def key(problem: Problem) -> tuple[int, int, int]:
        pos = problem.position
        return (ranks.get(pos.source, overrides_rank), pos.line or 0, pos.column or 0)

    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=key)
