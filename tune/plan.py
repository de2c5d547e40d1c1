"""What a recipe will do before it loads anything: the lines `tune validate` (and `tune run`) print.

Pure python (no torch): each line comes from the preset's architecture or a local checkpoint's
config.json, so `tune validate` stays instant. One function per topic, each in the module that
owns the fact:
    LoRA targets and trainable parameters     tune.models.adapters.lora_plan
    Liger kernels and the loss head           tune.models.liger_kernels.liger_plan
    Memory: weights by storage, LoRA, states  tune.models.memory.memory_plan
    Remote code (`model.trust_remote_code`)   tune.config.remote_code.remote_code_plan
    Deferred: what only the machine that      tune.models.machine_checks.deferred_checks
      trains can tell (checked by `tune run`
      before any data work)
"""

from __future__ import annotations

from tune.config.positions import PositionMap
from tune.config.schema import Recipe


def plan_lines(recipe: Recipe, positions: PositionMap | None = None) -> list[str]:
    """Every plan line for ``recipe``, in a fixed order (empty topics print nothing); ``positions``
    (where each key was written) lets a line name the file and line that asked for something."""
    from tune.config.remote_code import remote_code_plan
    from tune.models.adapters import lora_plan
    from tune.models.liger_kernels import liger_plan
    from tune.models.machine_checks import deferred_checks
    from tune.models.memory import memory_plan

    lines: list[str] = []
    for topic in (lora_plan, liger_plan, memory_plan):
        lines += topic(recipe)
    lines += remote_code_plan(recipe, positions)
    deferred = deferred_checks(recipe)
    if deferred:
        lines.append("deferred to `tune run` on the machine that trains (not checked here): " + "; ".join(deferred))
    else:
        lines.append("deferred: nothing; no setting of this recipe depends on the machine that trains")
    return lines
