"""What a recipe will do before it loads anything: the lines `tune validate` (and `tune run`) print.

Pure python (no torch): each line comes from the preset's architecture or a local checkpoint's
config.json, so `tune validate` stays instant. One function per topic, each in the module that
owns the fact:
    LoRA targets and trainable parameters     tune.models.adapters.lora_plan
    Liger kernels and the loss head           tune.models.liger_kernels.liger_plan
    Memory: weights by storage, LoRA, states  tune.models.memory.memory_plan
"""

from __future__ import annotations

from tune.config.schema import Recipe


def plan_lines(recipe: Recipe) -> list[str]:
    """Every plan line for ``recipe``, in a fixed order (empty topics print nothing)."""
    from tune.models.adapters import lora_plan
    from tune.models.liger_kernels import liger_plan
    from tune.models.memory import memory_plan

    lines: list[str] = []
    for topic in (lora_plan, liger_plan, memory_plan):
        lines += topic(recipe)
    return lines
