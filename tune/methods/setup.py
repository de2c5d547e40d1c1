"""The start every training method shares: checkpoint, tokenizer, data, resume point and model.

    checkpoint   located from `model` (preset, hub id or folder; offline hub ids refused at once)
    tokenizer    built from the checkpoint (or `model.tokenizer`), chat template required
    data         prepared by the method's own function (SFT samples or DPO pairs), report printed
    resume_from  the latest checkpoint of an interrupted run in `output.dir` (`train.resume`)
    model        loaded as the recipe says (dtype, 4-bit, router, Liger), from the resume
                 checkpoint's weights for full fine-tuning (tune.training.resume), then checked
                 against the tokenizer's vocabulary

The seed is set before the model loads, so every method draws new weights the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tune.config.schema import Recipe


@dataclass
class RunInputs:
    checkpoint: object
    tokenizer: object
    data: object
    resume_from: Path | None
    model: object


def load_run_inputs(recipe: Recipe, run_dir: Path, prepare: Callable, printer=print) -> RunInputs:
    """Everything above, in that order, printing what was found; ``prepare(recipe, tokenizer)``
    returns the method's PreparedData. Refuses (UserError) as each step does."""
    from transformers import set_seed

    from tune.models.checkpoints import locate_checkpoint
    from tune.models.loading import check_vocab_fits, load_model, load_tokenizer
    from tune.training.resume import latest_checkpoint, weights_for_resume

    checkpoint = locate_checkpoint(recipe.model)
    printer(f"model: {checkpoint.source} ({checkpoint.folder})")
    tokenizer = load_tokenizer(recipe, checkpoint)
    data = prepare(recipe, tokenizer)
    printer(f"data: prepared {'(from cache) ' if data.from_cache else ''}key {data.key}")
    for line in data.report.lines():
        printer(f"data: {line}")

    resume_from = latest_checkpoint(run_dir) if recipe.train.resume else None
    if resume_from:
        printer(f"resuming from {resume_from}")
    set_seed(recipe.train.seed)
    model = load_model(recipe, weights_for_resume(checkpoint, resume_from, recipe))
    check_vocab_fits(model, tokenizer, checkpoint.source)
    return RunInputs(checkpoint, tokenizer, data, resume_from, model)


def adopt_trainer(trainer, recipe: Recipe, printer=print) -> None:
    """Leave progress printing to tune's callback, and check and print what LoRA adapted
    (tune.models.adapters.check_adapted refuses experts asked for and not reached)."""
    from transformers.trainer_callback import PrinterCallback

    from tune.models.adapters import check_adapted

    trainer.remove_callback(PrinterCallback)
    if recipe.method.peft != "none":
        printer(f"model: {check_adapted(trainer.model, recipe):,} trainable parameters (LoRA)")
