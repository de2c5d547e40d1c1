"""Supervised fine-tuning (`method.name: sft`), full, LoRA or QLoRA, through TRL's SFTTrainer.

Features:
    - Model: a preset (LLM-jp-4 8B / 32B-A3B or a tiny twin), a hub id or a local folder, loaded
      in the recipe's dtype and attention kernel (tune.models).
    - Data: conversation JSONL files rendered with the tokenizer's own chat template, with the
      date and reasoning effort pinned by the recipe; loss on assistant tokens only, closing
      marker included (tune.data.chat_masks). TRL receives `input_ids` + `labels` and trains on
      them as they are.
    - `method.peft: lora` wraps the model with peft adapters (on MoE also the fused experts);
      `qlora` does so on a 4-bit base (tune.models.quantization); `none` trains every weight.
    - MoE: the router aux loss (`model.router_aux_loss_coef`, on with `output_router_logits`) is
      added by TRL and logged apart (`aux_loss`, and `lm_loss` without it).
    - Outputs in `output.dir`: `metrics.jsonl` (one line per log event), `manifest.json`
      (versions, git commit, seed, data fingerprint, steps, wall time, tokens/s,
      `final_train_loss`) and `final/` (the adapter or the full model, plus the tokenizer and
      its chat template), loadable by plain transformers / peft (tune.methods.finish).
    - Resume: when `output.dir` holds checkpoints of an interrupted run, training continues from
      the latest complete one (tune.methods.run_inputs, tune.training.resume), its steps identical
      to an uninterrupted run; a checkpoint at the last step finishes the run without training
      (tune.training.continuation). A checkpoint counts once its completion marker is written,
      after every file of it (tune.training.checkpoint_guard, which also applies
      `output.save_total_limit`, after the marker).

Refuses, before any training step, with a UserError: an unreachable hub id with no local copy,
a tokenizer without a chat template or larger than the model's vocabulary, a malformed data row
(file and line named), data with no trainable sample left, fp16 without a GPU.
"""

from __future__ import annotations

import time
from pathlib import Path

from tune.config.schema import Recipe
from tune.methods.run_records import Printer, ReadyTrainer, RunResult, TrainedRun
from tune.models.checkpoints import Checkpoint


def build_sft_trainer(recipe: Recipe, run_dir: Path, checkpoint: Checkpoint | None = None,
                      printer: Printer = print) -> ReadyTrainer:
    """Load tokenizer, data and model (tune.methods.run_inputs) and build TRL's SFTTrainer."""
    from tune.training.quiet import quiet_library_chatter

    quiet_library_chatter()
    from transformers import set_seed

    from tune.methods.run_inputs import load_run_inputs
    from tune.methods.run_records import make_ready
    from tune.models.adapters import lora_config
    from tune.training.arguments import router_aux_coef, sft_config
    from tune.training.checkpoint_guard import CheckpointGuard, take_over_rotation
    from tune.training.progress import ProgressCallback
    from tune.training.trainers import SftTrainer

    started = time.perf_counter()
    inputs = load_run_inputs(recipe, run_dir, checkpoint, printer)
    data = inputs.data
    progress = ProgressCallback(run_dir / "metrics.jsonl", printer=printer, aux_loss_coef=router_aux_coef(recipe),
                                z_loss_coef=recipe.model.router_z_loss_coef)
    args = sft_config(recipe, run_dir, has_eval=len(data.eval) > 0)
    guard = CheckpointGuard(run_dir, take_over_rotation(args), printer)  # complete checkpoints only
    set_seed(recipe.train.seed)  # LoRA weights are drawn inside the trainer's constructor
    trainer = SftTrainer(
        model=inputs.model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.eval if len(data.eval) else None,
        processing_class=inputs.tokenizer,
        peft_config=lora_config(recipe),
        callbacks=[progress, guard],
        min_lr_hold_steps=recipe.train.min_lr_hold_steps,
        router_z_loss_coef=recipe.model.router_z_loss_coef,
    )
    return make_ready(recipe, run_dir, inputs, trainer, progress, started, printer)


def train_sft(recipe: Recipe, run_dir: Path, checkpoint: Checkpoint | None = None, printer: Printer = print) -> RunResult:
    """Train ``recipe`` (method sft) and write its outputs into ``run_dir``."""
    from tune.methods.finish import finish_run
    from tune.training.continuation import train_or_finish

    ready = build_sft_trainer(recipe, run_dir, checkpoint, printer)
    result = train_or_finish(ready.trainer, ready.inputs.resume_from, printer)
    return finish_run(TrainedRun(ready, result), printer)
