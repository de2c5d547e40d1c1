"""Train, or continue from a checkpoint, or finish a run whose checkpoint is already its last step.

``train_or_finish`` is what every method calls instead of ``trainer.train()``:

    no checkpoint                   ``trainer.train()``
    checkpoint before the last step ``trainer.train(resume_from_checkpoint=...)``: optimizer, schedule,
                                    RNG and data position restored, the steps identical to an
                                    uninterrupted run (tests/methods/test_resume.py)
    checkpoint at the last step     no training step: the checkpoint's weights and trainer state are
                                    restored and the run finishes (evaluation, `final/`, manifest)
    checkpoint past the last step   refused (UserError): the recipe's length was shortened below it

Why the third case exists (a workaround, pinned by tests/methods/test_resume.py
test_rerun_after_the_last_checkpoint_finishes_without_training): transformers 5.24's loop takes a
step before it checks `max_steps`, so resuming from a checkpoint at the final step trains step
N+1 of N (the progress line shows "13/12" and ETA "-1 day", the manifest 13 steps) whenever the
last epoch is not whole. A run is interrupted there whenever it dies during the final save or the
final evaluation, after its last checkpoint. Finishing without ``train()`` restores what ``train()``
would have: the trainer state (steps, tokens, log history, the callbacks' recorded figures), the
weights (the full model was already loaded from the checkpoint, tune.training.resume; an adapter is
loaded by Trainer's own checkpoint loader), and the callbacks' ``on_train_begin`` / ``on_train_end``.
"""

from __future__ import annotations

import time
from pathlib import Path

from tune.errors import UserError
from tune.training.resume import STATE, checkpoint_step


def total_steps(trainer) -> int:
    """The optimizer steps ``trainer`` will train in all (`max_steps`, or the epochs over its data)."""
    if trainer.args.max_steps > 0:
        return trainer.args.max_steps
    return trainer.set_initial_training_values(trainer.args, trainer.get_train_dataloader())[-1]


def train_or_finish(trainer, resume_from: Path | None, printer=print):
    """Train ``trainer`` from the start or from ``resume_from`` (the cases of the module docstring);
    returns what ``trainer.train()`` returns (a TrainOutput)."""
    if resume_from is None:
        return trainer.train()
    step, total = checkpoint_step(resume_from), total_steps(trainer)
    if step > total:
        raise UserError(f"{resume_from} is at step {step}, past the {total} steps this recipe trains; "
                        "it cannot continue there (train.max_steps / train.epochs must not end before it)")
    if step < total:
        return trainer.train(resume_from_checkpoint=str(resume_from))
    printer(f"{resume_from.name} is the run's last step ({total}): finishing without training")
    return finish_from_checkpoint(trainer, resume_from)


def finish_from_checkpoint(trainer, checkpoint: Path):
    """Restore ``trainer`` from ``checkpoint`` (its state and weights) without a training step, calling
    the callbacks' train-begin and train-end events as ``train()`` would; returns the TrainOutput
    ``train()`` would have (no step trained by this process: its mean loss is None)."""
    from transformers.trainer_callback import TrainerState
    from transformers.trainer_utils import TrainOutput

    started = time.time()
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / STATE))
    if getattr(trainer.model, "peft_config", None):  # the adapter (a full model was loaded from the checkpoint)
        trainer._load_from_checkpoint(str(checkpoint))
        if getattr(trainer, "built_dtypes", None):  # QLoRA's bf16 adapters, which peft's loader made fp32
            from tune.training.adapter_dtype import restore_dtypes

            restore_dtypes(trainer.model, trainer.built_dtypes)
    trainer.control = trainer.callback_handler.on_train_begin(trainer.args, trainer.state, trainer.control)
    trainer.control = trainer.callback_handler.on_train_end(trainer.args, trainer.state, trainer.control)
    runtime = max(time.time() - started, 1e-6)
    metrics = {"train_runtime": runtime, "train_samples_per_second": 0.0, "train_steps_per_second": 0.0,
               "total_flos": trainer.state.total_flos, "train_loss": None}
    return TrainOutput(trainer.state.global_step, None, metrics)
