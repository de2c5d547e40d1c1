"""A run interrupted after a checkpoint resumes with exactly the losses of an uninterrupted run.

Pins the workaround in tune/training/resume.py: for Qwen3-MoE full fine-tuning, Trainer's own
checkpoint reload loses the fused experts; loading the weights from the checkpoint restores them.
Pins the one in tune/training/continuation.py: a rerun whose last checkpoint is the final step
finishes without training (transformers would train one step past `max_steps`). A checkpoint cut
short by the interruption is never resumed from (tune.training.resume), and a constant schedule
may grow on resume and still continue exactly (tune.training.resume_check).
"""

import json
import shutil
from pathlib import Path

import pytest

from tune.recipe import load_recipe
from tune.methods.run import run_recipe
from tune.training.resume import COMPLETE

pytestmark = pytest.mark.slow


def losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())}


def interrupt_after(run_dir: Path, step: int) -> None:
    """Leave ``run_dir`` as a run killed right after writing checkpoint-``step``: every later
    checkpoint cut short while saving (its trainer state half-written, no completion marker)."""
    for path in (run_dir / "manifest.json", run_dir / "final"):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
    for checkpoint in (run_dir / "checkpoints").iterdir():
        if checkpoint.name.startswith("checkpoint-") and int(checkpoint.name.split("-")[1]) > step:
            (checkpoint / COMPLETE).unlink()
            state = checkpoint / "trainer_state.json"
            state.write_text(state.read_text()[: len(state.read_text()) // 2])


@pytest.mark.parametrize("model, peft", [("tiny-llm-jp-4-32b-a3b", "none"), ("tiny-llm-jp-4-8b", "lora")])
def test_resume_after_preemption_matches_an_uninterrupted_run(overfit_recipe, model, peft):
    recipe = overfit_recipe(model, peft, lr=2e-3, steps=6)
    loaded = load_recipe(recipe, ["output.save_steps=3", "output.save_total_limit=3", "data.datasets.0.weight=8"])
    run_recipe(loaded)
    run_dir = Path(loaded.recipe.output.dir)
    uninterrupted = losses(run_dir)
    interrupt_after(run_dir, 3)
    run_recipe(loaded)
    resumed = losses(run_dir)
    assert sorted(resumed) == sorted(uninterrupted) == [1, 2, 3, 4, 5, 6]
    for step in (4, 5, 6):
        assert resumed[step] == pytest.approx(uninterrupted[step], abs=1e-6), (step, resumed, uninterrupted)


def tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(path)


@pytest.mark.parametrize("peft, weights", [("lora", "adapter_model.safetensors"), ("none", "model.safetensors")])
def test_rerun_after_the_last_checkpoint_finishes_without_training(overfit_recipe, capsys, peft, weights):
    # 24 samples in batches of 4: 6 steps an epoch, so a run of 4 ends inside its epoch, where
    # transformers would resume into a fifth step
    loaded = load_recipe(overfit_recipe("tiny-llm-jp-4-8b", peft, lr=2e-3, steps=4),
                         ["output.save_steps=2", "data.datasets.0.weight=8"])
    run_recipe(loaded)
    run_dir = Path(loaded.recipe.output.dir)
    before = losses(run_dir)
    interrupt_after(run_dir, 4)  # killed while saving final/ (or evaluating), after checkpoint-4
    capsys.readouterr()
    run_recipe(loaded)
    out = capsys.readouterr().out
    assert "checkpoint-4 is the run's last step (4): finishing without training" in out
    assert not [line for line in out.splitlines() if line.startswith("step ")]  # no training step
    assert losses(run_dir) == before and sorted(before) == [1, 2, 3, 4]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["steps"] == 4 and manifest["final_train_loss"] == before[4]
    final, saved = tensors(run_dir / "final" / weights), tensors(run_dir / "checkpoints" / "checkpoint-4" / weights)
    assert final.keys() == saved.keys() and all(final[k].equal(saved[k]) for k in final)


def test_a_constant_schedule_may_grow_on_resume_and_continues_exactly(overfit_recipe, tmp_path, capsys):
    constant = ["train.scheduler=constant", "output.save_steps=2", "data.datasets.0.weight=8"]
    recipe = overfit_recipe("tiny-llm-jp-4-8b", "lora", lr=2e-3, steps=4)
    longer = load_recipe(recipe, constant + ["train.max_steps=6", f"output.dir={tmp_path / 'six'}"])
    run_recipe(longer)
    uninterrupted = losses(tmp_path / "six")
    shorter = load_recipe(recipe, constant)
    run_recipe(shorter)
    run_dir = Path(shorter.recipe.output.dir)
    interrupt_after(run_dir, 2)
    capsys.readouterr()
    run_recipe(load_recipe(recipe, constant + ["train.max_steps=6"]))
    assert "changed on resume (allowed: the run continues exactly): train.max_steps: 4 -> 6" in capsys.readouterr().out
    resumed = losses(run_dir)
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]
    for step in range(1, 7):
        assert resumed[step] == pytest.approx(uninterrupted[step], abs=1e-6), (step, resumed, uninterrupted)
    assert load_recipe(run_dir / "recipe.yaml").recipe.train.max_steps == 6  # the record describes the run


def test_a_dpo_run_at_its_last_checkpoint_finishes_without_training(tmp_path, capsys):
    loaded = load_recipe("tiny/dpo-lora", ["train.precision=fp32", "logging.logging_steps=1", "data.max_seq_len=256",
                                           "train.per_device_batch_size=2", "train.max_steps=2", "train.warmup_steps=1",
                                           "output.save_steps=2", f"output.dir={tmp_path / 'run'}"])
    first = run_recipe(loaded).manifest
    run_dir = Path(loaded.recipe.output.dir)
    interrupt_after(run_dir, 2)
    capsys.readouterr()
    again = run_recipe(loaded).manifest
    out = capsys.readouterr().out
    assert "checkpoint-2 is the run's last step (2): finishing without training" in out
    assert not [line for line in out.splitlines() if line.startswith("step ")]
    assert again["steps"] == 2 and again["final_reward_margin"] == first["final_reward_margin"]
    assert again["final_eval_loss"] == pytest.approx(first["final_eval_loss"], abs=1e-6)
    final = tensors(run_dir / "final" / "adapter_model.safetensors")
    saved = tensors(run_dir / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors")
    assert all(final[k].equal(saved[k]) for k in saved)
