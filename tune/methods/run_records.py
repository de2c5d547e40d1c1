"""The typed records a training method passes along: a trainer ready to train, a trained run, its result.

    ReadyTrainer   built by a method (tune.methods.sft, tune.methods.dpo): the trainer with tune's
                   progress callback, the run's inputs, and where the run writes
    TrainedRun     what ``trainer.train()`` left, plus the method's own manifest fields
    RunResult      what ``tune run`` returns for every method: the manifest (also in
                   `output.dir/manifest.json`) and the trained model and tokenizer in memory
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

from tune.config.schema import Recipe
from tune.methods.run_inputs import RunInputs

if TYPE_CHECKING:
    from tune.training.progress import ProgressCallback
    from transformers import PreTrainedModel, PreTrainedTokenizerFast, Trainer
    from transformers.trainer_utils import TrainOutput

# A value of manifest.json.
JsonValue = Union[str, int, float, bool, None, dict[str, "JsonValue"], list["JsonValue"]]
Printer = Callable[[str], None]


@dataclass
class ReadyTrainer:
    """A trainer ready to train ``recipe`` into ``run_dir``: ``progress`` is its tune callback,
    ``started`` the ``time.perf_counter()`` at the start of the method (for the wall time)."""

    recipe: Recipe
    run_dir: Path
    inputs: RunInputs
    trainer: Trainer
    progress: ProgressCallback
    started: float


@dataclass
class TrainedRun:
    """A ReadyTrainer after ``train()``: what it returned, and the method's own manifest fields."""

    ready: ReadyTrainer
    result: TrainOutput
    extra: dict[str, JsonValue] = field(default_factory=dict)


@dataclass
class RunResult:
    """A finished run: its manifest, and the trained model and tokenizer, still in memory."""

    manifest: dict[str, JsonValue]
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast


def make_ready(recipe: Recipe, run_dir: Path, inputs: RunInputs, trainer: Trainer, progress: ProgressCallback,
               started: float, printer: Printer = print) -> ReadyTrainer:
    """``trainer`` as a ReadyTrainer: progress printing left to tune's callback, and for LoRA the
    trainable parameter count checked and printed (tune.models.adapters.check_adapted refuses
    experts asked for and not reached)."""
    from transformers.trainer_callback import PrinterCallback

    from tune.models.adapters import check_adapted

    trainer.remove_callback(PrinterCallback)
    if recipe.method.peft != "none":
        printer(f"model: {check_adapted(trainer.model, recipe):,} trainable parameters (LoRA)")
    return ReadyTrainer(recipe, run_dir, inputs, trainer, progress, started)
