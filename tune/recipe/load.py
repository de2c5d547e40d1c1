"""``load_recipe``: from a recipe file and overrides to a validated, resolved Recipe.

The steps: read the file with its bases, overrides and paths (tune.config.recipe_tree); resolve
the model name, variant, `path` / `revision` and MoE router defaults against the presets
(tune.recipe.model_checks) and the datasets against the cards and converters, their `fields`
included (tune.recipe.dataset_checks); check single values the schema's types let through:
non-finite numbers, booleans for numbers, dates off the calendar (tune.config.value_checks);
validate against the schema (tune.config.validation); then the combinations the schema cannot
see: settings one section makes pointless in another (tune.recipe.setting_checks), from the
architecture, LoRA targets and Liger support (tune.recipe.architecture_checks), and a `cpt` recipe's
corpora that are on this machine (tune.recipe.corpus_checks). Problems of the
steps after reading are reported together, in reading order, in one RecipeError; a key reported
by the value checks is not reported again by the schema.

What the machine must offer is checked elsewhere: this one's (trackers installed, `output.dir`
writable) by tune.recipe.environment_checks, run by `tune validate` and `tune run`; the training
machine's (GPU, kernels, precision) by tune.models.machine_checks at run start.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from tune.config.loaded_recipe import LoadedRecipe
from tune.config.problems import RecipeError, reading_order
from tune.config.recipe_tree import read_recipe_tree
from tune.config.validation import validate
from tune.config.value_checks import value_problems
from tune.recipe.architecture_checks import architecture_problems
from tune.recipe.corpus_checks import corpus_problems
from tune.recipe.dataset_checks import resolve_datasets
from tune.recipe.model_checks import resolve_model
from tune.recipe.setting_checks import setting_problems


def load_recipe(path: str | Path, overrides: Iterable[str] = (), now: datetime | None = None) -> LoadedRecipe:
    """Load, merge, override, resolve and validate the recipe at ``path``.

    ``path`` is a recipe file (relative to the current folder) or a shipped recipe name
    (``tiny/sft-lora``). ``overrides`` are ``key.path=value`` texts. ``now`` fixes the time stamp
    of a default ``output.dir`` (tests). Refuses with a ``RecipeError`` listing every problem.
    """
    read = read_recipe_tree(path, overrides, now)
    tree, positions = read.tree, read.positions
    problems = read.problems + resolve_model(tree, positions) + resolve_datasets(tree, positions)
    values = value_problems(tree, positions)
    recipe, schema_problems = validate(tree, positions)
    reported = {problem.key for problem in values}
    problems += values + [p for p in schema_problems if p.key not in reported]
    if recipe is not None and values:
        recipe = None  # the schema accepted a value the checks refuse (`max_steps: true`)
    if recipe is not None:
        problems += setting_problems(recipe, positions) + architecture_problems(recipe, positions)
        problems += corpus_problems(recipe, positions)
    if problems or recipe is None:
        raise RecipeError(reading_order(problems, positions.root.source))
    return LoadedRecipe(recipe, read.file, read.overrides, positions)
