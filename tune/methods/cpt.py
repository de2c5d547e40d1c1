"""Continued pre-training (`method.name: cpt`): the causal-LM loss on every token of pre-tokenized corpora.

Features:
    - Data: Megatron indexed datasets (`data.corpora`, `.bin` + `.idx`, as `tune data tokenize` writes
      them and LLM-jp distributes its corpora), cut into windows of `data.max_seq_len` + 1 tokens across
      document boundaries and blended by weight (tokens x repeat, or shares) by Megatron-Core's own
      GPTDataset and BlendedDataset code (tune.data.corpus_pipeline). No document mask, no position
      reset, no EOD loss mask: LLM-jp sets none.
    - Order: the global sample order is a function of the corpora, weights, sequence length, seed and
      the planned number of samples only. The trainer reads it in order (tune.training.corpus_trainer),
      so optimizer step k trains on samples [k x G, (k + 1) x G) whatever the number of processes; a
      resumed run starts at sample k x G of that order (no replay of the k consumed steps).
    - Model: a preset, hub id or local folder, full fine-tuning with fp32 master weights by default
      (FSDP2 / DeepSpeed ZeRO across nodes: tune.training.strategy), LoRA and QLoRA allowed.
    - Schedule: any of `train.scheduler`, typically `wsd` with `decay_style: minus_sqrt` as LLM-jp
      trains (tune.training.schedule); Adam beta2 defaults to 0.95 for cpt.
    - MoE: the router aux loss (transformers' own, `model.router_aux_loss_coef`) and the router z-loss
      (`model.router_z_loss_coef`, tune.training.router_losses), each logged apart from the LM loss.
    - Held-out perplexity: every `train.eval_steps`, the loss and perplexity of each corpus's held-out
      windows (`data.eval_fraction`) and of each `data.eval_corpora` entry, as
      `eval_<name>_loss` / `eval_<name>_perplexity` in metrics.jsonl, and at the end in the manifest.
    - Outputs, checkpoints, preemption and resume as every method (tune.methods.run, tune.methods.finish).

Refuses, before any training step, with a UserError: a missing corpus file (naming
`data.corpora.N.prefix`), a corpus tokenized with another tokenizer (its tune manifest says which),
an `.idx` whose dtype cannot hold the vocabulary, and what every method refuses.
"""

from __future__ import annotations

import time
from pathlib import Path

from tune.config.schema import Recipe
from tune.methods.run_records import Printer, ReadyTrainer, RunResult, TrainedRun
from tune.models.checkpoints import Checkpoint


def build_cpt_trainer(recipe: Recipe, run_dir: Path, checkpoint: Checkpoint | None = None,
                      printer: Printer = print) -> ReadyTrainer:
    """Load tokenizer, corpora and model (tune.methods.run_inputs) and build the corpus trainer, its train
    set starting at the resume checkpoint's first unseen sample."""
    from tune.training.quiet import quiet_library_chatter

    quiet_library_chatter()
    from transformers import set_seed

    from tune.methods.run_inputs import load_run_inputs
    from tune.methods.run_records import make_ready
    from tune.models.adapters import lora_config
    from tune.training.arguments import router_aux_coef
    from tune.training.checkpoint_guard import CheckpointGuard, take_over_rotation
    from tune.training.corpus_trainer import collate_windows
    from tune.training.cpt_arguments import cpt_arguments
    from tune.training.progress import ProgressCallback
    from tune.training.resume import checkpoint_step
    from tune.training.trainers import CorpusTrainer

    started = time.perf_counter()
    inputs = load_run_inputs(recipe, run_dir, checkpoint, printer)
    data = inputs.data
    args = cpt_arguments(recipe, run_dir, planned_samples=len(data.train), has_eval=bool(data.eval))
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    train_set = data.train
    if inputs.resume_from is not None:
        first = checkpoint_step(inputs.resume_from) * per_step
        train_set = data.train.starting_at(min(first, len(data.train)))
        printer(f"data: continuing at sample {first:,} of {len(data.train):,} (step {first // per_step})")
    progress = ProgressCallback(run_dir / "metrics.jsonl", printer=printer, aux_loss_coef=router_aux_coef(recipe),
                                z_loss_coef=recipe.model.router_z_loss_coef, evaluations=True)
    guard = CheckpointGuard(run_dir, take_over_rotation(args), printer)  # complete checkpoints only
    set_seed(recipe.train.seed)  # LoRA weights are drawn inside the trainer's constructor
    model = inputs.model
    peft = lora_config(recipe)
    if peft is not None:
        from peft import get_peft_model

        model = get_peft_model(model, peft)
    trainer = CorpusTrainer(
        model=model,
        args=args,
        data_collator=collate_windows,
        train_dataset=train_set,
        eval_dataset=data.eval or None,
        processing_class=inputs.tokenizer,
        callbacks=[progress, guard],
        min_lr_hold_steps=recipe.train.min_lr_hold_steps,
        router_z_loss_coef=recipe.model.router_z_loss_coef,
    )
    return make_ready(recipe, run_dir, inputs, trainer, progress, started, printer)


def train_cpt(recipe: Recipe, run_dir: Path, checkpoint: Checkpoint | None = None, printer: Printer = print) -> RunResult:
    """Train ``recipe`` (method cpt) and write its outputs into ``run_dir``."""
    from tune.methods.finish import finish_run
    from tune.training.continuation import train_or_finish

    ready = build_cpt_trainer(recipe, run_dir, checkpoint, printer)
    result = train_or_finish(ready.trainer, ready.inputs.resume_from, printer)
    return finish_run(TrainedRun(ready, result), printer)
