"""The numerical guard (tune.training.nan_guard): a non-finite loss, gradient norm or weight stops the
run with the step and the knobs named, before anything of that step is saved; under fp16 a gradient
overflow is a skipped step, not a failure.

The decision logic is tested on a stand-in trainer (no model load, no training); the slow tests
train the tiny twins (SFT and DPO) into a weight decay that overflows and check what a user sees:
the refusal, the checkpoints kept, no `final/`, no loss 0.0 in `metrics.jsonl`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tune.errors import UserError
from tune.training.nan_guard import (MAX_SKIPPED_IN_A_ROW, NonFiniteGuardMixin, NonFiniteTraining, gradient_norm,
                                     weights_finite)

NAN, INF = float("nan"), float("inf")


class StandInTrainer:
    """What the guard reads of a transformers Trainer: model, args, state, accelerator, callbacks."""

    def __init__(self, tmp_path: Path, fp16: bool = False, scaler: bool = False):
        self.model = torch.nn.Linear(4, 4)
        self.args = SimpleNamespace(fp16=fp16, bf16=False, learning_rate=1e-3, weight_decay=1e30, max_grad_norm=1.0,
                                    output_dir=str(tmp_path / "run" / "checkpoints"))
        self.state = SimpleNamespace(global_step=4, is_world_process_zero=True)
        self.accelerator = SimpleNamespace(sync_gradients=True, scaler=object() if scaler else None)
        self.callbacks = []
        self.next_loss = torch.tensor(1.0)

    def add_callback(self, callback):
        self.callbacks.append(callback)

    def training_step(self, model, inputs, num_items_in_batch=None):
        return self.next_loss


class Guarded(NonFiniteGuardMixin, StandInTrainer):
    pass


def step(trainer: Guarded, loss: float, grad: float = 0.5, sync: bool = True):
    """One micro-batch: the loss it returns and the gradient left on the weights."""
    trainer.next_loss = torch.tensor(loss)
    trainer.model.weight.grad = torch.full_like(trainer.model.weight, grad)
    trainer.model.bias.grad = torch.zeros_like(trainer.model.bias)
    trainer.accelerator.sync_gradients = sync
    return trainer.training_step(trainer.model, {})


def test_the_guard_is_in_every_trainer_tune_builds():
    from tune.training.trainers import DpoTrainer, SftTrainer

    assert issubclass(SftTrainer, NonFiniteGuardMixin) and issubclass(DpoTrainer, NonFiniteGuardMixin)


def test_trainer_arguments_never_filter_a_non_finite_loss(tmp_path):
    """transformers' filter would log a NaN loss as the mean of earlier ones (0.0 right after a log)."""
    from tune.recipe import load_recipe
    from tune.training.arguments import dpo_config, sft_config

    assert sft_config(load_recipe("tiny/sft-lora", ["train.precision=fp32"]).recipe, tmp_path).logging_nan_inf_filter is False
    assert dpo_config(load_recipe("tiny/dpo-lora", ["train.precision=fp32"]).recipe, tmp_path).logging_nan_inf_filter is False


def test_finite_steps_pass_and_are_returned_unchanged(tmp_path):
    trainer = Guarded(tmp_path)
    assert step(trainer, 2.5).item() == 2.5
    assert trainer.nonfinite_guard.step_losses == []


@pytest.mark.parametrize("loss, shown", [(NAN, "the loss is nan"), (INF, "the loss is inf")])
def test_a_non_finite_loss_stops_with_the_step_and_the_knobs(tmp_path, loss, shown):
    trainer = Guarded(tmp_path)
    with pytest.raises(NonFiniteTraining) as err:
        step(trainer, loss)
    message = str(err.value)
    assert isinstance(err.value, UserError)  # `tune run` prints it and exits 2
    assert f"training stopped at step 5: {shown}" in message
    for knob in ("train.lr: 0.001", "train.weight_decay: 1e+30", "train.precision: fp32", "train.max_grad_norm: 1",
                 "the data around step 5", "no final/", "output.overwrite=true"):
        assert knob in message, (knob, message)


def test_a_non_finite_gradient_norm_stops_before_the_optimizer_step(tmp_path):
    trainer = Guarded(tmp_path)
    with pytest.raises(NonFiniteTraining, match=r"step 5: the gradient norm is inf \(the loss was finite: 1\)"):
        step(trainer, 1.0, grad=INF)


def test_with_gradient_accumulation_a_bad_micro_batch_is_judged_at_the_step(tmp_path):
    trainer = Guarded(tmp_path)
    step(trainer, NAN, sync=False)  # first micro-batch: gradients not complete yet, nothing judged
    with pytest.raises(NonFiniteTraining, match="the loss is nan"):
        step(trainer, 1.0, sync=True)


def test_fp16_gradient_overflow_is_a_skipped_step_not_a_failure(tmp_path):
    printed = []
    trainer = Guarded(tmp_path, fp16=True, scaler=True)
    guard = trainer.nonfinite_guard
    guard.printer = printed.append
    step(trainer, 1.0, grad=INF)  # no raise: the scaler will skip it
    guard.on_optimizer_step(trainer.args, trainer.state, None, optimizer=SimpleNamespace(step_was_skipped=True))
    assert guard.skipped_steps == [5] and "step 5: fp16 gradient overflow, step skipped" in printed[0]
    step(trainer, 1.0)  # the next step is fine again
    guard.on_optimizer_step(trainer.args, trainer.state, None, optimizer=SimpleNamespace(step_was_skipped=False))
    assert guard.skipped_in_a_row == 0
    guard.on_train_end(trainer.args, trainer.state, None)
    assert "fp16: 1 step(s) skipped by the loss scaler" in printed[-1]


def test_fp16_non_finite_loss_is_still_a_failure(tmp_path):
    trainer = Guarded(tmp_path, fp16=True, scaler=True)
    with pytest.raises(NonFiniteTraining, match="the loss is nan"):
        step(trainer, NAN, grad=NAN)


def test_fp16_overflow_the_scaler_did_not_skip_is_a_failure(tmp_path):
    trainer = Guarded(tmp_path, fp16=True, scaler=True)
    step(trainer, 1.0, grad=INF)
    with pytest.raises(NonFiniteTraining, match="the fp16 loss scaler did not skip the step"):
        trainer.nonfinite_guard.on_optimizer_step(trainer.args, trainer.state, None,
                                                  optimizer=SimpleNamespace(step_was_skipped=False))


def test_fp16_without_a_loss_scaler_fails_on_a_non_finite_gradient(tmp_path):
    trainer = Guarded(tmp_path, fp16=True, scaler=False)
    with pytest.raises(NonFiniteTraining, match="the gradient norm is inf"):
        step(trainer, 1.0, grad=INF)


def test_fp16_overflowing_step_after_step_is_a_failure(tmp_path):
    trainer = Guarded(tmp_path, fp16=True, scaler=True)
    guard = trainer.nonfinite_guard
    guard.printer = lambda line: None
    skipped = SimpleNamespace(step_was_skipped=True)
    for _ in range(MAX_SKIPPED_IN_A_ROW - 1):
        step(trainer, 1.0, grad=INF)
        guard.on_optimizer_step(trainer.args, trainer.state, None, optimizer=skipped)
    step(trainer, 1.0, grad=INF)
    with pytest.raises(NonFiniteTraining, match=f"overflowed {MAX_SKIPPED_IN_A_ROW} steps in a row"):
        guard.on_optimizer_step(trainer.args, trainer.state, None, optimizer=skipped)


def test_fp16_gradients_beyond_fp16_range_in_norm_only_are_finite():
    """Scaled fp16 gradients can have a norm above 65504 with every element finite: no overflow."""
    model = torch.nn.Linear(64, 64).half()
    model.weight.grad = torch.full_like(model.weight, 60000.0)
    assert math.isfinite(gradient_norm(model).item()) and gradient_norm(model).item() > 65504


def test_weights_made_non_finite_by_a_step_stop_the_run_before_a_save(tmp_path):
    trainer = Guarded(tmp_path)
    guard = trainer.nonfinite_guard
    with torch.no_grad():
        trainer.model.weight[0, 0] = INF
    assert not weights_finite(trainer.model)
    trainer.state.global_step = 5
    quiet = SimpleNamespace(should_save=False, should_evaluate=False, should_training_stop=False)
    guard.on_step_end(trainer.args, trainer.state, quiet, model=trainer.model)  # nothing to protect: not checked
    for event in ("should_save", "should_evaluate", "should_training_stop"):
        control = SimpleNamespace(**{**vars(quiet), event: True})
        with pytest.raises(NonFiniteTraining, match="step 5: its optimizer step made trainable weights non-finite"):
            guard.on_step_end(trainer.args, trainer.state, control, model=trainer.model)


def test_frozen_weights_are_not_the_guards_business(tmp_path):
    model = torch.nn.Linear(4, 4)
    model.weight.requires_grad_(False)
    with torch.no_grad():
        model.weight[0, 0] = NAN  # e.g. a frozen base the run does not write
    assert weights_finite(model)


# ---- real runs on the tiny twin (SFT and DPO) ---------------------------------------------------

def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def checkpoint_steps(run_dir: Path) -> list[int]:
    folder = run_dir / "checkpoints"
    return sorted(int(p.name.split("-")[1]) for p in folder.iterdir() if p.name.startswith("checkpoint-")) \
        if folder.is_dir() else []


OVERFLOW = ["train.precision=fp32", "train.max_steps=5", "train.warmup_steps=0", "train.per_device_batch_size=2",
            "data.max_seq_len=256", "output.save_steps=1", "output.save_total_limit=10", "logging.logging_steps=1"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny/sft-lora", "tiny/dpo-lora"])
def test_an_overflowing_weight_decay_stops_the_run_and_keeps_the_last_checkpoint(name, tmp_path, capsys):
    """Weight decay 1e30 multiplies every LoRA weight by about -1e27 in step 1 (finite, huge); step 2's
    loss is NaN. TRL would have logged it as 0.0, saved checkpoint-2..5 and `final/`, and exited 0."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tune.cli import main
    from tune.models.checkpoints import locate_checkpoint
    from tune.recipe import load_recipe

    overrides = [*OVERFLOW, "train.weight_decay=1e30", f"output.dir={tmp_path / 'run'}"]
    assert main(["run", name, *overrides]) == 2
    message = capsys.readouterr().err
    run_dir = tmp_path / "run"
    kept = run_dir / "checkpoints" / "checkpoint-1"
    assert "error: training stopped at step 2: the loss is nan" in message, message
    assert "train.weight_decay: 1e+30" in message and f"is kept: {kept}" in message, message
    assert "Traceback" not in message
    assert checkpoint_steps(run_dir) == [1]  # nothing saved after the first non-finite step
    assert not (run_dir / "final").exists() and not (run_dir / "manifest.json").exists()
    logged = records(run_dir)
    assert [r["step"] for r in logged] == [1] and all(math.isfinite(r["loss"]) and r["loss"] != 0.0 for r in logged)
    base = AutoModelForCausalLM.from_pretrained(locate_checkpoint(load_recipe(name, overrides).recipe.model).folder)
    adapted = PeftModel.from_pretrained(base, kept)  # the kept checkpoint loads with plain peft
    lora = [p for n, p in adapted.named_parameters() if "lora_" in n]
    assert lora and all(torch.isfinite(p).all() for p in lora)


@pytest.mark.slow
def test_weights_blown_up_by_a_step_are_never_saved(tmp_path):
    """Weight decay 1e300 makes the LoRA weights infinite in step 1's optimizer step, with a finite loss
    and gradient: the weight check before the save stops the run, so not even checkpoint-1 is written."""
    from tune.methods.run import run_recipe
    from tune.recipe import load_recipe

    loaded = load_recipe("tiny/sft-lora", [*OVERFLOW, "train.weight_decay=1e300", f"output.dir={tmp_path / 'run'}"])
    run_dir = Path(loaded.recipe.output.dir)
    with pytest.raises(NonFiniteTraining) as err:
        run_recipe(loaded)
    assert "step 1: its optimizer step made trainable weights non-finite" in str(err.value)
    assert "no checkpoint had been written before it" in str(err.value)
    assert checkpoint_steps(run_dir) == [] and not (run_dir / "final").exists()
    assert all(r["loss"] != 0.0 and math.isfinite(r["loss"]) for r in records(run_dir))


def test_the_weight_check_reads_each_ranks_own_part_of_a_sharded_parameter():
    # DeepSpeed ZeRO-3 empties a parameter between uses and keeps this rank's partition in ds_tensor;
    # FSDP2 keeps it in a DTensor's local shard: the check must read those, not the empty or global view
    layer = torch.nn.Linear(2, 2)
    layer.weight.data = torch.empty(0)
    layer.weight.ds_tensor = torch.tensor([1.0, NAN])
    assert not weights_finite(layer)
    layer.weight.ds_tensor = torch.tensor([1.0, 2.0])
    assert weights_finite(layer)

