"""The resolve layer: a recipe file to a validated, fully resolved Recipe, every check included.

``load_recipe`` is what every caller uses (``tune run``, ``validate``, ``data preview``, tests).
It sits above tune.config (YAML, bases, overrides, paths, schema), tune.models and tune.data:
it asks their registries (presets, dataset cards, converters, LoRA targets, Liger support)
about the recipe and turns their answers, which name a dotted key, into file:line:col problems.
Pure python: no torch.
"""

from tune.recipe.load import load_recipe

__all__ = ["load_recipe"]
