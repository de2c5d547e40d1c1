"""Direct preference optimisation (`method.name: dpo`), full or LoRA/QLoRA, through TRL's DPOTrainer.

Features:
    - Model: a preset (LLM-jp-4 8B / 32B-A3B or a tiny twin; `model.variant` picks the released
      checkpoint to start from, e.g. `instruct`), a hub id or a local folder, loaded in the
      recipe's dtype and attention kernel (tune.models), exactly as SFT loads it.
    - Data: preference pairs (preference cards, or `format: preference` files) rendered with the
      tokenizer's own chat template and SFT's masking rules (tune.data.preference_samples): the prompt ends
      in the generation prompt, and each answer's tokens are exactly the assistant span SFT would
      train on, closing marker included. TRL receives `prompt_ids` / `chosen_ids` / `rejected_ids`
      and scores them as they are, without re-tokenizing (tune.training.dpo_trainer); its
      completion mask covers exactly the answer tokens.
    - Reference model: with `method.peft: none`, a frozen second copy of the starting checkpoint
      (loaded like the policy; a resumed run still compares against the start, not the
      checkpoint it resumes from). With `lora` / `qlora`, no second copy: the reference is the
      same model with its adapters disabled (TRL's PEFT path; `trainer.ref_model` is None).
    - Loss: `method.dpo.loss_type` (any TRL offers; default sigmoid), `beta` (default 0.5, LLM-jp-4's
      published value), `label_smoothing` (robust / exo_pair). Dropout is off during DPO (TRL's
      default), so policy and reference log-probabilities match token for token at step 0.
    - MoE: the router load-balancing loss, weighted by `model.router_aux_loss_coef`, is added to
      the DPO loss when `model.output_router_logits` is true; it is logged apart (`aux_loss`), and
      the DPO part as `dpo_loss`.
    - Outputs in `output.dir`: `metrics.jsonl` (per log event: loss, rewards/chosen,
      rewards/rejected, rewards/margins, rewards/accuracies, log-probs, aux loss, ...), the printed
      progress line with margin and accuracy, `manifest.json` (as SFT's, plus the final reward
      margin and accuracy) and `final/` (adapter or full model + tokenizer), loadable by plain
      transformers / peft (tune.methods.finish).
    - Resume: as SFT (tune.training.resume, tune.training.continuation): from the latest complete
      checkpoint, a checkpoint at the last step finishing without training.

Refuses, before any training step, with a UserError: data of the wrong kind (conversation or text
datasets; the message names `data.datasets.N`), `data.packing`, a pair whose two answers the
template renders after different prompts, data with no pair left, an unknown `method.dpo.loss_type`
(at validation, with a suggestion), `exo_pair` without label smoothing, and everything SFT refuses
about the model and tokenizer.
"""

from __future__ import annotations

import time
from pathlib import Path

from tune.config.schema import Recipe
from tune.methods.run_records import Printer, ReadyTrainer, RunResult, TrainedRun
from tune.models.checkpoints import Checkpoint


def build_dpo_trainer(recipe: Recipe, run_dir: Path, checkpoint: Checkpoint | None = None,
                      printer: Printer = print) -> ReadyTrainer:
    """Load tokenizer, data, policy (and, for full fine-tuning, the reference) and build the trainer."""
    from tune.training.quiet import quiet_library_chatter

    quiet_library_chatter()
    from transformers import set_seed

    from tune.data.preference_samples import COLUMNS
    from tune.methods.run_inputs import load_run_inputs
    from tune.methods.run_records import make_ready
    from tune.models.adapters import lora_config
    from tune.models.loading import load_model
    from tune.training.arguments import dpo_config, router_aux_coef
    from tune.training.checkpoint_guard import CheckpointGuard, take_over_rotation
    from tune.training.trainers import DpoTrainer
    from tune.training.progress import ProgressCallback

    started = time.perf_counter()
    inputs = load_run_inputs(recipe, run_dir, checkpoint, printer)
    data = inputs.data
    # the trainer gets the three columns TRL collates, nothing else (`dataset` is for the report)
    train_set = data.train.select_columns(list(COLUMNS))
    eval_set = data.eval.select_columns(list(COLUMNS)) if len(data.eval) else None
    reference = None
    if recipe.method.peft == "none":
        # the starting checkpoint, also when resuming; TRL would reload model.name_or_path instead
        reference = load_model(recipe, inputs.checkpoint).eval().requires_grad_(False)
        printer("model: reference = a frozen copy of the starting checkpoint")
    else:
        printer("model: reference = the same model with its adapters disabled (no second copy)")
    progress = ProgressCallback(run_dir / "metrics.jsonl", printer=printer, aux_loss_coef=router_aux_coef(recipe))
    args = dpo_config(recipe, run_dir, has_eval=eval_set is not None)
    guard = CheckpointGuard(run_dir, take_over_rotation(args), printer)  # complete checkpoints only
    set_seed(recipe.train.seed)  # LoRA weights are drawn inside the trainer's constructor
    trainer = DpoTrainer(
        model=inputs.model,
        ref_model=reference,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=inputs.tokenizer,
        peft_config=lora_config(recipe),
        callbacks=[progress, guard],
        min_lr_hold_steps=recipe.train.min_lr_hold_steps,
    )
    return make_ready(recipe, run_dir, inputs, trainer, progress, started, printer)


def train_dpo(recipe: Recipe, run_dir: Path, checkpoint: Checkpoint | None = None, printer: Printer = print) -> RunResult:
    """Train ``recipe`` (method dpo) and write its outputs into ``run_dir``."""
    from tune.methods.finish import finish_run
    from tune.training.continuation import train_or_finish

    ready = build_dpo_trainer(recipe, run_dir, checkpoint, printer)
    result = train_or_finish(ready.trainer, ready.inputs.resume_from, printer)
    last = ready.progress.last_record
    extra = {
        "dpo": recipe.method.dpo.model_dump(),
        "reference": "frozen copy" if recipe.method.peft == "none" else "adapters disabled",
        "final_reward_margin": last.get("rewards/margins"),
        "final_reward_accuracy": last.get("rewards/accuracies"),
    }
    return finish_run(TrainedRun(ready, result, extra), printer)
