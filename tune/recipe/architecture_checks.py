"""What the schema cannot see: recipe settings the model's architecture or the launch strategy cannot serve.

Run on the validated Recipe, when the architecture is known here (a preset, or a local
checkpoint's config.json; a hub id is checked when it loads):

- LoRA targets (tune.models.adapters.resolve_lora_targets): experts or router on a dense model, a
  target no module matches, dropout on adapted MoE experts; reported at the key the refusal names.
- Liger (tune.models.liger_kernels.liger_refusal): an architecture or a combination Liger's kernels
  cannot patch; reported at `model.liger`.
- Strategy (strategy_problems, reported at `launch.strategy` or `train.master_weights`):
    * QLoRA of a MoE model under a strategy that shards parameters (`fsdp2`, `deepspeed_zero3`):
      tune stores the fused experts in 4 bits as a tensor subclass that dequantizes on use
      (tune.models.quantized_experts, docs/qlora.md), which neither FSDP2's DTensor nor ZeRO-3's
      partitioning can split across ranks;
    * full fine-tuning with `train.master_weights: none` under DeepSpeed, whose bf16 mode always
      keeps fp32 master weights (tune.training.strategy).
"""

from __future__ import annotations

from tune.config.positions import PositionMap
from tune.config.problems import Problem
from tune.config.schema import Recipe
from tune.models.adapters import LoraTargetError, resolve_lora_targets
from tune.models.liger_kernels import KEY as LIGER_KEY
from tune.models.liger_kernels import liger_refusal
from tune.models.shapes import architecture_config, is_moe

PARAMETER_SHARDING = ("fsdp2", "deepspeed_zero3")


def architecture_problems(recipe: Recipe, positions: PositionMap) -> list[Problem]:
    """The LoRA, Liger and strategy problems of ``recipe``, each at the value of the key to fix."""
    problems = []
    try:
        resolve_lora_targets(recipe)
    except LoraTargetError as err:
        problems.append(Problem(positions.value(err.key), err.key, err.what))
    refusal = liger_refusal(recipe)
    if refusal:
        problems.append(Problem(positions.value(LIGER_KEY), LIGER_KEY, refusal))
    problems += [Problem(positions.value(key), key, what) for key, what in strategy_problems(recipe)]
    return problems


def strategy_problems(recipe: Recipe) -> list[tuple[str, str]]:
    """(dotted key, what is wrong and what to do) for each combination `launch.strategy` cannot train (module docstring)."""
    problems = []
    strategy = recipe.launch.strategy
    config = architecture_config(recipe)
    if recipe.method.peft == "qlora" and strategy in PARAMETER_SHARDING and config is not None and is_moe(config):
        problems.append(("launch.strategy", (
            f"`{strategy}` shards every parameter across the ranks, and QLoRA of {recipe.model.name} keeps its fused "
            "MoE experts in 4 bits, which cannot be sharded; use launch.strategy: ddp or deepspeed_zero2 "
            "(each rank holds the 4-bit base), or method.peft: lora with fsdp2")))
    if recipe.method.peft == "none" and recipe.train.master_weights == "none" and strategy.startswith("deepspeed"):
        problems.append(("train.master_weights", (
            f"`none` under launch.strategy `{strategy}`: DeepSpeed's bf16 mode always keeps fp32 master weights; "
            "set train.master_weights: fp32, or launch.strategy: fsdp2 or ddp to train 16-bit weights directly")))
    return problems
