"""A run interrupted after a checkpoint resumes with exactly the losses of an uninterrupted run.

Pins the workaround in tune/training/resume.py: for Qwen3-MoE full fine-tuning, Trainer's own
checkpoint reload loses the fused experts; loading the weights from the checkpoint restores them.
"""

import json
import shutil
from pathlib import Path

import pytest

from tune.recipe import load_recipe
from tune.methods.run import run_recipe

pytestmark = pytest.mark.slow


def losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())}


def interrupt_after(run_dir: Path, step: int) -> None:
    """Leave ``run_dir`` as a run killed right after writing checkpoint-``step``."""
    for path in (run_dir / "manifest.json", run_dir / "final"):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
    for checkpoint in (run_dir / "checkpoints").iterdir():
        if checkpoint.name.startswith("checkpoint-") and int(checkpoint.name.split("-")[1]) > step:
            shutil.rmtree(checkpoint)


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
