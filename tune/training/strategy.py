"""How `launch.strategy` becomes TrainingArguments: DDP, FSDP2 or DeepSpeed ZeRO-2/3, through accelerate.

tune builds no process group and shards nothing itself: transformers' Trainer hands these arguments
to accelerate, which wraps the model (``DistributedDataParallel``, ``fully_shard``, or a DeepSpeed
engine). This module only chooses them:

    ddp              nothing (accelerate's default under a multi-process launch)
    fsdp2            ``fsdp`` + ``fsdp_config``: FSDP2 (``version: 2``), one FSDP unit per decoder
                     layer (the model's ``_no_split_modules``, accelerate's transformer-based wrap),
                     parameters re-sharded after forward, a full (unsharded) state dict for
                     ``final/`` so that it loads in plain transformers / peft, `launch.cpu_offload`
                     as FSDP2's CPU offload policy
    deepspeed_zero2  ``deepspeed``: a config dict with ZeRO stage 2 (optimizer states and gradients
    deepspeed_zero3  partitioned) or 3 (parameters too, gathered into one 16-bit state dict when the
                     model is saved); every batch, clipping and precision value ``auto`` so that the
                     Trainer fills them from the same recipe fields as on one process;
                     `launch.cpu_offload` offloads the optimizer (ZeRO-2/3) and the parameters
                     (ZeRO-3) to CPU with the Trainer's own optimizer

fp32 master weights (`train.master_weights: fp32`, full fine-tuning): the weights load in fp32
(tune.models.loading) and stay fp32 in the optimizer, the compute runs in `train.precision`:
autocast on one process and under DDP, FSDP2's ``MixedPrecisionPolicy`` (accelerate sets it from
the Trainer's ``bf16``), DeepSpeed's bf16 mode (fp32 partitions of the weights and optimizer
states, bf16 module). `none` loads `model.dtype` and trains those weights directly; under FSDP2
the mixed-precision policy is then left off (accelerate would upcast the weights to fp32 for it),
and DeepSpeed, whose bf16 mode always keeps fp32 masters, refuses it at validation
(tune.recipe.architecture_checks). docs/strategies.md has the rationale and the measurements.

On CPU (gloo, the tests), accelerate never selects FSDP by itself: tune.training.cpu_sharding holds
the one patch that makes it shard there too.

Known limits, measured on CPU: under FSDP2 accelerate reduces gradients in the compute dtype (its
``MixedPrecisionPolicy`` sets ``reduce_dtype`` = ``param_dtype``; transformers' ``fsdp_config`` cannot
change it); QLoRA's 4-bit base layers stay whole on every rank under FSDP2 (only the adapters,
embeddings and norms are sharded), which trains exactly as one process does. QLoRA of a MoE model
under a parameter-sharding strategy is refused at validation (tune.recipe.architecture_checks). A
DeepSpeed strategy without DeepSpeed installed is a UserError naming the `tune[deepspeed]` extra.
"""

from __future__ import annotations

from tune.config.schema import Recipe
from tune.errors import UserError

SHARDED = ("fsdp2", "deepspeed_zero2", "deepspeed_zero3")


def strategy_kwargs(recipe: Recipe) -> dict:
    """The `fsdp` / `fsdp_config` / `deepspeed` TrainingArguments for `launch.strategy` (module docstring),
    plus ``ddp_timeout`` from `launch.timeout_minutes` (used when accelerate starts the process group)."""
    launch = recipe.launch
    kwargs: dict = {"ddp_timeout": max(1, round(launch.timeout_minutes * 60))}
    if launch.strategy == "fsdp2":
        kwargs["fsdp"] = True  # FSDP on; everything else in fsdp_config (the string form is deprecated)
        kwargs["fsdp_config"] = fsdp2_config(recipe)
    elif launch.strategy.startswith("deepspeed_zero"):
        require_deepspeed(launch.strategy)
        kwargs["deepspeed"] = deepspeed_config(recipe)
    return kwargs


def require_deepspeed(strategy: str) -> None:
    """UserError unless DeepSpeed can be imported here (found without importing it)."""
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        raise UserError(
            f"launch.strategy: {strategy} needs DeepSpeed, which is not installed in this environment: "
            "pip install 'tune[deepspeed]' (or launch.strategy: fsdp2, which needs nothing more)")


def fsdp2_config(recipe: Recipe) -> dict:
    """transformers' ``fsdp_config`` for FSDP2 (module docstring)."""
    return {
        "version": 2,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "reshard_after_forward": True,
        "state_dict_type": "FULL_STATE_DICT",
        "cpu_ram_efficient_loading": False,
        "cpu_offload": recipe.launch.cpu_offload,
    }


def deepspeed_config(recipe: Recipe) -> dict:
    """The DeepSpeed config dict for `deepspeed_zero2` / `deepspeed_zero3` (module docstring)."""
    stage = 3 if recipe.launch.strategy == "deepspeed_zero3" else 2
    zero: dict = {
        "stage": stage,
        "overlap_comm": False,
        "contiguous_gradients": True,
        "reduce_bucket_size": "auto",
    }
    if stage == 3:
        zero.update({
            "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": "auto",
            "stage3_gather_16bit_weights_on_model_save": True,
        })
    if recipe.launch.cpu_offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        if stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    return {
        "zero_optimization": zero,
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "gradient_clipping": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "train_batch_size": "auto",
        # the Trainer's own optimizer (train.optimizer) also with offload: DeepSpeed's CPU Adam is a
        # compiled extension, and a different optimizer would train differently from one process
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 1_000_000_000,
        "wall_clock_breakdown": False,
    }


def mixed_precision_off(recipe: Recipe) -> bool:
    """Whether the Trainer's ``bf16`` / ``fp16`` flags must stay off although `train.precision` asks for
    16-bit compute: full fine-tuning with `train.master_weights: none` under FSDP2, whose
    mixed-precision policy would upcast the 16-bit weights to fp32 masters (the weights are then
    already in the 16-bit dtype, so the compute still is)."""
    return recipe.launch.strategy == "fsdp2" and recipe.method.peft == "none" and recipe.train.master_weights == "none"
