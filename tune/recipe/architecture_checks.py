"""What the schema cannot see: recipe settings the model's architecture cannot serve.

Run on the validated Recipe, when the architecture is known here (a preset, or a local
checkpoint's config.json; a hub id is checked when it loads):

- LoRA targets (tune.models.adapters.resolve_lora_targets): experts or router on a dense model, a
  target no module matches, dropout on adapted MoE experts; reported at the key the refusal names.
- Liger (tune.models.liger_kernels.liger_refusal): an architecture or a combination Liger's kernels
  cannot patch; reported at `model.liger`.
"""

from __future__ import annotations

from tune.config.positions import PositionMap
from tune.config.problems import Problem
from tune.config.schema import Recipe
from tune.models.adapters import LoraTargetError, resolve_lora_targets
from tune.models.liger_kernels import KEY as LIGER_KEY
from tune.models.liger_kernels import liger_refusal


def architecture_problems(recipe: Recipe, positions: PositionMap) -> list[Problem]:
    """The LoRA and Liger problems of ``recipe``, each at the value of the key to fix."""
    problems = []
    try:
        resolve_lora_targets(recipe)
    except LoraTargetError as err:
        problems.append(Problem(positions.value(err.key), err.key, err.what))
    refusal = liger_refusal(recipe)
    if refusal:
        problems.append(Problem(positions.value(LIGER_KEY), LIGER_KEY, refusal))
    return problems
