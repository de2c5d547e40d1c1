"""Continued pre-training reads one global sample order: the same run on 1 process and on 2 (DDP) at the same
global batch trains on the same samples at every step, and a run saved on 2 processes resumes on 1 exactly.

`tune run recipes/tiny/cpt.yaml` for 4 steps of global batch 4: one process with 2 windows x 2 accumulation
steps, two processes with 2 windows each, and the two-process run cut back to its checkpoint at step 2 and
continued by one process (tune.training.resume_check allows that topology change for cpt on ddp only).
Losses agree within 2e-6 (fp32 on CPU; adam_epsilon 1e-6 as in test_topology.py, for the same reason: an
embedding row no window touches gets reduction-order noise that eps 1e-8 would amplify).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.distributed.conftest import launch

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

COMMON = ["train.max_steps=4", "train.warmup_steps=1", "train.decay_steps=2", "train.global_batch_size=4",
          "train.per_device_batch_size=2", "train.grad_accumulation=null", "train.eval_steps=null",
          "train.adam_epsilon=1e-6", "train.precision=fp32", "logging.logging_steps=1", "output.save_steps=2",
          "output.save_total_limit=4"]
TOLERANCE = 2e-6


def losses(run_dir: Path) -> dict[int, float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if "loss" in r}


def train(run_dir: Path, processes: int, cache: Path) -> str:
    result = launch(["run", "recipes/tiny/cpt.yaml", *COMMON, f"launch.processes_per_node={processes}",
                     f"output.dir={run_dir}"], nproc=processes, env={"TUNE_CACHE": str(cache)}, timeout=420)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_one_and_two_processes_train_on_the_same_samples_and_resume_across_them(tmp_path):
    cache = tmp_path / "cache"
    train(tmp_path / "one", 1, cache)  # also builds Megatron's indices once, before two processes read them
    train(tmp_path / "two", 2, cache)
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(one) == sorted(two) == [1, 2, 3, 4]
    for step in one:
        assert two[step] == pytest.approx(one[step], abs=TOLERANCE), (step, one, two)

    moved = tmp_path / "two-then-one"
    shutil.copytree(tmp_path / "two", moved)
    for path in (moved / "manifest.json", moved / "final", moved / "checkpoints" / "checkpoint-4"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    records = [line for line in (moved / "metrics.jsonl").read_text().splitlines() if json.loads(line).get("step", 0) <= 2]
    (moved / "metrics.jsonl").write_text("\n".join(records) + "\n")
    out = train(moved, 1, cache)
    assert "data: continuing at sample 8 of 16 (step 2)" in out
    resumed = losses(moved)
    assert sorted(resumed) == [1, 2, 3, 4]
    for step in (3, 4):
        assert resumed[step] == pytest.approx(one[step], abs=TOLERANCE), (step, one, resumed)
