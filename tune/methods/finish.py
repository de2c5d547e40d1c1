"""The end every training method shares: evaluate, save `final/`, write the manifest, print the summary.

After ``trainer.train()``:
    - evaluation on the held-out rows, when there are any (its metrics go into the manifest);
    - ``final/``: the adapter (LoRA / QLoRA; its `base_model_name_or_path` names the hub id the run
      started from, or the local folder) or the full model, plus the tokenizer and its chat template
      (and ``tokenizer.model`` when the tokenizer source had a SentencePiece model), its files
      rewritten to load in transformers 4.x too (tune.training.consumer_compat), and tune's model
      card as ``README.md`` (tune.training.model_card; written last, to show the training curve);
    - ``manifest.json``: versions, git commit, seed, data fingerprint and report, final eval loss
      (and eval rewards for DPO), the method's own figures, and the training figures of
      ``ProgressCallback.run_figures`` (tune.training.progress), each named for what it covers so
      that a resumed run's manifest tells the truth: the run's totals (`steps`, `tokens_seen`,
      `run_train_time_s`), its losses over every step (`final_train_loss`, `mean_train_loss` over
      `mean_train_loss_steps`), this process's own (`resumed_from_step`, `train_time_s`,
      `wall_time_s`, `tokens_per_s`), and one entry per session (`sessions`); docs/manifest.md;
    - ``training_curve.svg`` in the run folder and in ``final/``: loss and lr (DPO: also reward margin
      and accuracy) against step, drawn from ``metrics.jsonl`` (tune.training.curve; none when no loss
      was logged);
    - two printed lines: the run's final figures, and where the outputs are.

Many processes: every rank evaluates and calls ``trainer.save_model`` (FSDP2 and ZeRO-3 gather the
full weights from every rank's shards; transformers writes them from the main rank); everything
else in ``final/`` and the run folder (tokenizer, portable rewrite, adapter base, manifest, curve,
model card) is written by the main rank alone, after every rank has saved. The other ranks return
the same figures without writing them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tune.methods.run_records import Printer, RunResult, TrainedRun
from tune.models.checkpoints import Checkpoint


def finish_run(run: TrainedRun, printer: Printer = print) -> RunResult:
    """Save the trained model and tokenizer into ``run_dir/final``, write ``run_dir/manifest.json``
    (with the method's ``extra`` fields, and the eval metrics when rows were held out), draw
    ``run_dir/training_curve.svg`` (copied into ``final/``), write tune's model card as
    ``final/README.md`` and return the result."""
    from tune.training.curve import CURVE_FILE, curve_title, write_training_curve
    from tune.training.consumer_compat import make_portable
    from tune.training.manifest import write_manifest
    from tune.training.model_card import write_card
    from tune.training.progress import preference_figures

    ready = run.ready
    recipe, run_dir, trainer, inputs, progress = ready.recipe, ready.run_dir, ready.trainer, ready.inputs, ready.progress
    eval_metrics = trainer.evaluate() if len(inputs.data.eval) else {}
    eval_rewards = {k.removeprefix("eval_rewards/"): v for k, v in eval_metrics.items() if k.startswith("eval_rewards/")}

    final_dir = run_dir / "final"
    trainer.save_model(str(final_dir))  # every rank: sharded weights are gathered; the main rank writes
    main = trainer.is_world_process_zero()
    trainer.accelerator.wait_for_everyone()  # every process has saved: the rest is written once, on the main one
    adapter = recipe.method.peft != "none"
    if main:
        inputs.tokenizer.save_pretrained(str(final_dir))
        make_portable(final_dir, [Path(recipe.model.tokenizer) if recipe.model.tokenizer else inputs.checkpoint.folder])
        if adapter:
            point_adapter_at_base(final_dir, inputs.checkpoint, recipe.model.revision)
    wall = time.perf_counter() - ready.started
    runtime = run.result.metrics.get("train_runtime", 0.0)
    figures = progress.run_figures(trainer.state, run.result.training_loss, runtime)  # docs/manifest.md
    manifest = (write_manifest if main else _unwritten)(
        run_dir / "manifest.json",
        method=recipe.method.name,
        peft=recipe.method.peft,
        model={"source": inputs.checkpoint.source, "folder": str(inputs.checkpoint.folder), "revision": recipe.model.revision},
        seed=recipe.train.seed,
        data={"fingerprint": inputs.data.key, "report": inputs.data.report.to_dict()},
        **figures,
        wall_time_s=round(wall, 2),
        final_eval_loss=eval_metrics.get("eval_loss"),
        **eval_sets_figures(eval_metrics),
        **({"final_eval_rewards": eval_rewards} if eval_rewards else {}),
        **run.extra,
        final_dir=str(final_dir),
    )
    if main:
        write_training_curve(progress.metrics_path, run_dir / CURVE_FILE, curve_title(recipe, run_dir), copy_to=[final_dir])
        write_card(final_dir, recipe, manifest, title=run_dir.name, form="adapter" if adapter else "full")
    kind = "LoRA adapter" if adapter else "model"
    printer(done_line(manifest, preference_figures(progress.last_record).replace(" | ", ", ")))
    printer(f"saved {kind} + tokenizer to {final_dir}  (run folder: {run_dir})")
    return RunResult(manifest, trainer.model, inputs.tokenizer)


def eval_sets_figures(eval_metrics: dict) -> dict:
    """With several named eval sets (cpt: one per corpus), their final losses and perplexities by name."""
    from tune.training.corpus_trainer import perplexity

    losses = {key.removeprefix("eval_").removesuffix("_loss"): value for key, value in eval_metrics.items()
              if key.startswith("eval_") and key.endswith("_loss") and key != "eval_loss" and "/" not in key}
    if not losses:
        return {}
    return {"final_eval_losses": losses,
            "final_eval_perplexities": {name: round(perplexity(loss), 4) for name, loss in losses.items()}}


def _unwritten(path: Path, **fields) -> dict:
    """The manifest's fields as the main rank writes them (without the environment it adds), not written."""
    return dict(fields)


def done_line(manifest: dict, preference: str = "") -> str:
    """The printed summary: steps (and where this process resumed), its time, the final loss, the
    DPO ``preference`` figures and this process's tokens/s."""
    resumed = manifest.get("resumed_from_step")
    steps = f"{manifest['steps']} steps" + (f" (resumed at step {resumed})" if resumed else "")
    loss = manifest.get("final_train_loss")
    speed = manifest.get("tokens_per_s")
    return (f"done: {steps} in {manifest['wall_time_s']:.0f} s, final loss "
            f"{'-' if loss is None else f'{loss:.4f}'}, {preference}"
            f"{'-' if speed is None else f'{speed:,.0f}'} tokens/s")


def point_adapter_at_base(final_dir: Path, checkpoint: Checkpoint, revision: str | None) -> None:
    """Record the hub id (not a local cache folder) as the adapter's base, when it came from the hub."""
    config_path = final_dir / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = (
        checkpoint.source if _is_hub_source(checkpoint) else str(checkpoint.folder)
    )
    if revision and _is_hub_source(checkpoint):
        config["revision"] = revision
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def _is_hub_source(checkpoint: Checkpoint) -> bool:
    return "/" in checkpoint.source and not Path(checkpoint.source).exists() and not (
        checkpoint.preset and checkpoint.preset.is_tiny
    )
