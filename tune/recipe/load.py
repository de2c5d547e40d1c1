"""``load_recipe``: from a recipe file and overrides to a validated, resolved Recipe.

The steps: read the file with its bases, overrides and paths (tune.config.recipe_tree); resolve
the model name, variant and MoE router defaults against the presets (tune.recipe.model_checks)
and the datasets against the cards and converters (tune.recipe.dataset_checks); validate against
the schema (tune.config.validation); then the combinations the schema cannot see, from the
architecture: LoRA targets and Liger support (tune.recipe.architecture_checks). Problems of the
last four steps are reported together, in reading order, in one RecipeError.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from tune.config.loaded_recipe import LoadedRecipe
from tune.config.problems import RecipeError, reading_order
from tune.config.recipe_tree import read_recipe_tree
from tune.config.validation import validate
from tune.recipe.architecture_checks import architecture_problems
from tune.recipe.dataset_checks import resolve_datasets
from tune.recipe.model_checks import resolve_model


def load_recipe(path: str | Path, overrides: Iterable[str] = (), now: datetime | None = None) -> LoadedRecipe:
    """Load, merge, override, resolve and validate the recipe at ``path``.

    ``path`` is a recipe file (relative to the current folder) or a shipped recipe name
    (``tiny/sft-lora``). ``overrides`` are ``key.path=value`` texts. ``now`` fixes the time stamp
    of a default ``output.dir`` (tests). Refuses with a ``RecipeError`` listing every problem.
    """
    read = read_recipe_tree(path, overrides, now)
    tree, positions = read.tree, read.positions
    problems = read.problems + resolve_model(tree, positions) + resolve_datasets(tree, positions)
    recipe, schema_problems = validate(tree, positions)
    problems += schema_problems
    if recipe is not None:
        problems += architecture_problems(recipe, positions)
    if problems or recipe is None:
        raise RecipeError(reading_order(problems, positions.root.source))
    return LoadedRecipe(recipe, read.file, read.overrides, positions)
