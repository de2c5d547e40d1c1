"""Supervised fine-tuning (`method.name: sft`), full or LoRA, through TRL's SFTTrainer.

Features:
    - Model: a preset (LLM-jp-4 8B / 32B-A3B or a tiny twin), a hub id or a local folder, loaded
      in the recipe's dtype and attention kernel (tune.models).
    - Data: conversation JSONL files rendered with the tokenizer's own chat template, with the
      date and reasoning effort pinned by the recipe; loss on assistant tokens only, closing
      marker included (tune.data.chat_masks). TRL receives `input_ids` + `labels` and trains on
      them as they are.
    - `method.peft: lora` wraps the model with peft adapters; `none` trains every weight.
    - Outputs in `output.dir`: `metrics.jsonl` (one line per log event), `manifest.json`
      (versions, git commit, seed, data fingerprint, steps, wall time, tokens/s,
      `final_train_loss`) and `final/` (the adapter or the full model, plus the tokenizer and
      its chat template), loadable by plain transformers / peft.

    - Resume: when `output.dir` holds checkpoints of an interrupted run, training continues from
      the latest (tune.training.resume), its steps identical to an uninterrupted run.

Refuses, before any training step, with a UserError: an unreachable hub id with no local copy,
a tokenizer without a chat template or larger than the model's vocabulary, a malformed data row
(file and line named), data with no trainable sample left, fp16 without a GPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tune.config.schema import Recipe


@dataclass
class SftOutcome:
    """What a finished SFT run leaves in memory: its manifest and the trained model + tokenizer."""

    manifest: dict
    model: object
    tokenizer: object


def train_sft(recipe: Recipe, run_dir: Path, printer=print) -> SftOutcome:
    """Train ``recipe`` and write its outputs into ``run_dir``."""
    from tune.training.quiet import quiet_library_chatter

    quiet_library_chatter()
    from transformers import set_seed
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTTrainer

    from tune.data.prepare import prepare_sft_data
    from tune.models.checkpoints import locate_checkpoint
    from tune.models.adapters import check_adapted, lora_config
    from tune.models.loading import check_vocab_fits, load_model, load_tokenizer
    from tune.training.arguments import router_aux_coef, sft_config
    from tune.methods.finish import finish_run
    from tune.training.resume import latest_checkpoint, weights_for_resume
    from tune.training.progress import ProgressCallback

    started = time.perf_counter()
    checkpoint = locate_checkpoint(recipe.model)
    printer(f"model: {checkpoint.source} ({checkpoint.folder})")
    tokenizer = load_tokenizer(recipe, checkpoint)
    data = prepare_sft_data(recipe, tokenizer)
    printer(f"data: prepared {'(from cache) ' if data.from_cache else ''}key {data.key}")
    for line in data.report.lines():
        printer(f"data: {line}")

    resume_from = latest_checkpoint(run_dir) if recipe.train.resume else None
    if resume_from:
        printer(f"resuming from {resume_from}")
    set_seed(recipe.train.seed)
    model = load_model(recipe, weights_for_resume(checkpoint, resume_from, recipe))
    check_vocab_fits(model, tokenizer, checkpoint.source)
    progress = ProgressCallback(run_dir / "metrics.jsonl", printer=printer, aux_loss_coef=router_aux_coef(recipe))
    set_seed(recipe.train.seed)  # LoRA weights are drawn inside the trainer's constructor
    trainer = SFTTrainer(
        model=model,
        args=sft_config(recipe, run_dir, has_eval=len(data.eval) > 0),
        train_dataset=data.train,
        eval_dataset=data.eval if len(data.eval) else None,
        processing_class=tokenizer,
        peft_config=lora_config(recipe),
        callbacks=[progress],
    )
    trainer.remove_callback(PrinterCallback)
    if recipe.method.peft != "none":
        printer(f"model: {check_adapted(trainer.model, recipe):,} trainable parameters (LoRA)")
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    manifest = finish_run(recipe, run_dir, trainer=trainer, tokenizer=tokenizer, checkpoint=checkpoint,
                          data=data, result=result, progress=progress, started=started, printer=printer)
    return SftOutcome(manifest, trainer.model, tokenizer)

