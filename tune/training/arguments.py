"""Translate a Recipe into TRL's SFTConfig / DPOConfig: the one place recipe fields meet trainer arguments."""

from __future__ import annotations

from pathlib import Path

from tune.config.schema import Recipe
from tune.errors import UserError

_SCHEDULERS = {"cosine": "cosine_with_min_lr", "linear": "linear", "constant": "constant_with_warmup",
               "wsd": "warmup_stable_decay"}  # wsd: built by tune.training.wsd_schedule from the kwargs below


def resolve_precision(recipe: Recipe) -> str:
    """`bf16`, `fp16` or `fp32`: `auto` means bf16 on a CUDA GPU that supports it, fp32 elsewhere.

    Refuses what this machine lacks (fp16 without a CUDA GPU, bf16 on a GPU without it): the
    rule lives in tune.models.machine_checks, which `tune run` asks before any data work.
    """
    from tune.models.machine_checks import resolve_precision as machine_precision

    return machine_precision(recipe)


def router_aux_coef(recipe: Recipe) -> float | None:
    """The aux-loss weight TRL should add: the recipe's coefficient, 0 when `output_router_logits`
    is false (TRL turns the aux loss on whenever the coefficient is non-zero), None for dense models."""
    if recipe.model.output_router_logits is None:
        return None
    return recipe.model.router_aux_loss_coef if recipe.model.output_router_logits else 0.0


def _scheduler_kwargs(train) -> dict:
    """The schedule's own arguments: the floor as ``min_lr_rate`` (cosine, wsd), and for wsd the decay's length
    and shape, which tune.training.wsd_schedule reads (it settles a `decay_fraction` once the steps are known)."""
    if train.scheduler == "cosine":
        return {"min_lr_rate": train.min_lr / train.lr}
    if train.scheduler == "wsd":
        length = {"decay_steps": train.decay_steps} if train.decay_steps is not None else {"decay_fraction": train.decay_fraction}
        return {"decay_style": train.decay_style, "min_lr_rate": train.min_lr / train.lr, **length}
    return {}


def trainer_kwargs(recipe: Recipe, run_dir: Path, has_eval: bool = False) -> dict:
    """The TrainingArguments every method shares (SFTConfig and DPOConfig alike): schedule,
    optimizer, batch, precision, sequence length, evaluation, logging, checkpoints under
    ``run_dir/checkpoints``, the MoE router aux-loss weight. `logging.report_to` goes to transformers'
    `report_to` as is (its own tracker callbacks: tensorboard, wandb, mlflow, trackio), with the run
    folder's name as the trackers' `run_name`.

    With ``has_eval`` (rows were held out) and `train.eval_steps`, evaluation runs every that
    many steps. transformers' ``logging_nan_inf_filter`` is off: a non-finite loss is reported as
    it is, never replaced by the mean of earlier ones (tune.training.nan_guard stops the run on
    one). Refuses (UserError) fp16 without a CUDA GPU.

    `launch.strategy` adds the FSDP2 / DeepSpeed arguments of tune.training.strategy (which also
    says how fp32 master weights are kept under each); without CUDA, FSDP2 installs
    tune.training.cpu_sharding first. The cosine's floor goes to transformers as ``min_lr_rate``
    (`train.min_lr` / `train.lr`), which works under every strategy. `train.scheduler: wsd` is Megatron's WSD,
    built by the trainers' tune.training.wsd_schedule from ``lr_scheduler_kwargs`` (decay style, floor, length).
    """
    import torch

    from tune.training.strategy import mixed_precision_off, strategy_kwargs

    train = recipe.train
    precision = resolve_precision(recipe)
    if recipe.launch.strategy == "fsdp2" and not torch.cuda.is_available():
        from tune.training import cpu_sharding

        cpu_sharding.install()  # accelerate would silently run DDP on CPU (tune.training.cpu_sharding)
    scheduler = _SCHEDULERS[train.scheduler]
    return dict(
        output_dir=str(run_dir / "checkpoints"),
        num_train_epochs=train.epochs,
        max_steps=train.max_steps or -1,
        learning_rate=train.lr,
        lr_scheduler_type=scheduler,
        # min_lr as a rate of lr (the same number transformers computes from min_lr): with min_lr itself the
        # schedule reads optimizer.defaults, which DeepSpeed ZeRO-3's optimizer lacks (docs/strategies.md)
        lr_scheduler_kwargs=_scheduler_kwargs(train),
        warmup_steps=train.warmup_steps,
        per_device_train_batch_size=train.per_device_batch_size,
        gradient_accumulation_steps=train.grad_accumulation,
        optim=train.optimizer,
        adam_beta1=train.adam_beta1,
        adam_beta2=train.adam_beta2,
        adam_epsilon=train.adam_epsilon,
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        seed=train.seed,
        data_seed=train.seed,
        activation_checkpointing=train.gradient_checkpointing,
        bf16=precision == "bf16" and not mixed_precision_off(recipe),
        fp16=precision == "fp16" and not mixed_precision_off(recipe),
        use_cpu=not torch.cuda.is_available(),
        max_length=recipe.data.max_seq_len + (1 if getattr(recipe.data, "packing", "none") == "concat" else 0),  # concat windows: tune.data.concat_windows
        eval_strategy="steps" if has_eval and train.eval_steps else "no",
        eval_steps=train.eval_steps,
        per_device_eval_batch_size=train.per_device_batch_size,
        logging_steps=recipe.logging.logging_steps,
        logging_first_step=True,
        report_to=list(recipe.logging.report_to) or "none",
        run_name=run_dir.name,
        save_strategy="steps" if recipe.output.save_steps else "no",
        save_steps=recipe.output.save_steps or 500,
        save_total_limit=recipe.output.save_total_limit,
        include_num_input_tokens_seen="non_padding",
        router_aux_loss_coef=router_aux_coef(recipe),
        disable_tqdm=True,
        dataloader_num_workers=0,
        logging_nan_inf_filter=False,  # a non-finite loss is never logged as an earlier mean (tune.training.nan_guard)
        **strategy_kwargs(recipe),
    )


def sft_config(recipe: Recipe, run_dir: Path, has_eval: bool = False):
    """The SFTConfig for ``recipe``: the shared arguments plus, with `data.packing: isolated`, the
    packing arguments of tune.data.packing (`concat` windows are prepared whole by tune.data: TRL
    neither packs nor pads them)."""
    from trl import SFTConfig

    from tune.data.packing import packing_sft_config_kwargs

    isolated = recipe.data.packing == "isolated"
    packing = packing_sft_config_kwargs(recipe.model.attn_implementation) if isolated else {"packing": False}
    return SFTConfig(**trainer_kwargs(recipe, run_dir, has_eval), **packing)


def dpo_config(recipe: Recipe, run_dir: Path, has_eval: bool = False):
    """The DPOConfig for ``recipe``: the shared arguments plus `method.dpo` (beta, loss type,
    label smoothing). `max_length` bounds prompt + answer, as tune.data.preference_samples already does,
    so TRL's collator never truncates. Dropout stays off (TRL's `disable_dropout` default): the
    policy and reference log-probabilities are compared token for token."""
    from trl import DPOConfig

    dpo = recipe.method.dpo
    return DPOConfig(
        **trainer_kwargs(recipe, run_dir, has_eval),
        beta=dpo.beta,
        loss_type=[dpo.loss_type],
        label_smoothing=dpo.label_smoothing,
    )
