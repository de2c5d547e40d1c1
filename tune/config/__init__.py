"""Recipes: the schema, YAML loading with positions, ``base:`` chains, overrides and errors.

Imports pydantic and PyYAML only (no torch), so ``tune validate`` stays instant.
"""

from tune.config.errors import Problem, RecipeError
from tune.config.loaded import LoadedRecipe
from tune.config.loader import load_recipe

__all__ = ["LoadedRecipe", "Problem", "RecipeError", "load_recipe"]
