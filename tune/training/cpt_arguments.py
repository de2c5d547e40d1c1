"""transformers' TrainingArguments for method cpt: the arguments every method shares, on transformers' own Trainer.

cpt trains with transformers' ``Trainer`` (its loss is the model's own causal-LM loss over every token),
so the shared arguments of tune.training.arguments go to ``TrainingArguments`` without TRL's keys
(`max_length`, TRL's `router_aux_loss_coef`: the aux loss is the model's own, added by transformers'
Qwen3-MoE forward with the coefficient tune.models.loading writes into its config). Besides:

    max_steps          the planned optimizer steps: the train set holds exactly planned steps x the
                       global batch windows (tune.data.corpus_pipeline), so `train.epochs` has already
                       been turned into steps there
    ignore_data_skip   a resumed run is handed the train set from its first unseen sample
                       (tune.methods.cpt), so the Trainer must not skip batches itself (an O(steps) replay)
    remove_unused_columns  off: the windows are plain tensors, collated by tune.training.corpus_trainer
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tune.config.schema import Recipe
from tune.training.arguments import trainer_kwargs

# Keys of the shared arguments that only TRL's configs take.
TRL_ONLY = ("max_length", "router_aux_loss_coef")


def cpt_arguments(recipe: Recipe, run_dir: Path, planned_samples: int, has_eval: bool = False):
    """The TrainingArguments of a cpt run whose train set holds ``planned_samples`` windows (module docstring)."""
    from transformers import TrainingArguments

    kwargs = {key: value for key, value in trainer_kwargs(recipe, run_dir, has_eval).items() if key not in TRL_ONLY}
    known = {field.name for field in dataclasses.fields(TrainingArguments)}
    unknown = set(kwargs) - known
    assert not unknown, f"shared trainer arguments TrainingArguments lacks: {sorted(unknown)}"
    args = TrainingArguments(**kwargs, ignore_data_skip=True, remove_unused_columns=False)
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    args.max_steps = max(1, planned_samples // per_step)
    return args
