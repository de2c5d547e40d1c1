"""The start every training method shares: tokenizer, data, resume point and model, from a located checkpoint.

    checkpoint   located by tune.methods.run before any heavy import (a missing folder or an
                 offline hub id fails at once); a method called directly locates it itself
    tokenizer    built from the checkpoint (or `model.tokenizer`), chat template required
    data         prepared by tune.data for the method's kind of data (METHODS), report printed:
                 conversations or pairs by tune.data.pipeline, corpora (cpt) by tune.data.corpus_pipeline
    resume_from  the latest complete checkpoint of an interrupted run in `output.dir` (`train.resume`;
                 whether the recipe may continue it was decided by tune.methods.run)
    model        loaded as the recipe says (dtype, 4-bit, router, Liger), from the resume
                 checkpoint's weights for full fine-tuning (tune.training.resume), then checked
                 against the tokenizer's vocabulary

The seed is set before the model loads, so every method draws new weights the same way.

Many processes: every rank loads its own tokenizer, data and model; the data is prepared once (the
preparing rank writes the cache entry, the others wait for it on the file system: tune.data.cache),
and a failure on any rank stops every rank once all have finished this step, printed once
(tune.training.distributed.failures_agreed), so a rank whose preparation failed never leaves the
others waiting in the trainer's first collective. Nothing here may run a collective (the block's
rule): the trainer arguments, whose DeepSpeed ZeRO-3 config would make ``from_pretrained``
partition the weights collectively (zero.Init), are built after this step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tune.config.schema import Recipe
from tune.data.prepared import PreparedData
from tune.models.checkpoints import Checkpoint

if TYPE_CHECKING:
    from tune.data.corpus_pipeline import CorpusData
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

Printer = Callable[[str], None]


@dataclass
class RunInputs:
    """What a method trains: the located checkpoint, its tokenizer, the prepared data, the
    checkpoint to resume from (None for a fresh run) and the loaded model."""

    checkpoint: Checkpoint
    tokenizer: PreTrainedTokenizerFast
    data: PreparedData | CorpusData
    resume_from: Path | None
    model: PreTrainedModel

    @property
    def resume_checkpoint(self) -> str | None:
        """What ``Trainer.train(resume_from_checkpoint=...)`` takes: the checkpoint to continue, or None."""
        return str(self.resume_from) if self.resume_from else None


def load_run_inputs(recipe: Recipe, run_dir: Path, checkpoint: Checkpoint | None = None, printer: Printer = print) -> RunInputs:
    """Everything above, in that order, printing what was found. Refuses (UserError) as each step does."""
    from transformers import set_seed

    from tune.config.methods import METHODS
    from tune.data.pipeline import prepare_data
    from tune.models.checkpoints import locate_checkpoint
    from tune.models.loading import check_vocab_fits, load_model, load_tokenizer
    from tune.training.resume import latest_checkpoint, weights_for_resume

    from tune.training.distributed import ensure_process_group, failures_agreed

    ensure_process_group(recipe.launch.timeout_minutes)  # made by `tune run` already; here for direct callers
    with failures_agreed():
        checkpoint = checkpoint or locate_checkpoint(recipe.model)
        printer(f"model: {checkpoint.source} ({checkpoint.folder})")
        tokenizer = load_tokenizer(recipe, checkpoint)
        if METHODS[recipe.method.name].data_kind == "corpus":
            from tune.data.corpus_pipeline import prepare_corpora

            data = prepare_corpora(recipe, tokenizer, printer=printer)
        else:
            data = prepare_data(recipe, tokenizer, printer=printer)
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
