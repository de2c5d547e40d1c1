"""Recipes, the ground floor: the schema, YAML reading with positions, ``base:`` chains, overrides, errors.

Imports pydantic, PyYAML, the standard library and tune's ground modules (``tune.errors``,
``tune.resources``) only: no torch and no other room of tune, so every room may import it and
``tune validate`` stays instant. ``tune.recipe.load_recipe`` puts these pieces together with the
checks that need presets, dataset cards or the architecture.
"""

from tune.config.loaded_recipe import LoadedRecipe
from tune.config.problems import Problem, RecipeError

__all__ = ["LoadedRecipe", "Problem", "RecipeError"]
