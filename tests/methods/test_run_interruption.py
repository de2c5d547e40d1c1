"""Two `tune run` into one folder, and a run stopped by SIGTERM, as a user (or a scheduler) does it.

The first run holds the folder's lease while it trains: a second `tune run` into the same folder
exits 2 naming it. SIGTERM (a preemption) stops the first run, which releases the lease and prints
the exact command that continues it; that command resumes the run to its end.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tune.training.folder_lease import LEASE
from tune.training.resume import latest_checkpoint

pytestmark = pytest.mark.slow


def test_a_second_run_is_refused_and_sigterm_prints_the_command_that_continues(overfit_recipe, tmp_path, repo_root):
    recipe = overfit_recipe("tiny-llm-jp-4-8b", "lora", lr=2e-3, steps=40)
    run_dir = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "tune", "run", recipe, "output.save_steps=2", "data.datasets.0.weight=8"]
    first = subprocess.Popen(command, cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while latest_checkpoint(run_dir) is None:  # training has begun
            assert first.poll() is None, first.communicate()
            assert time.time() < deadline, "no checkpoint after 300 s"
            time.sleep(0.2)
        second = subprocess.run(command + ["train.seed=1"], cwd=repo_root, env=env, capture_output=True, text=True,
                                timeout=300)
        assert second.returncode == 2, second.stderr
        assert f"is in use: its lease ({run_dir / LEASE}) is held by process {first.pid} on host" in second.stderr
        assert "Traceback" not in second.stderr
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    # SIGTERM is a preemption signal (launch.preempt_signals): the step ends, a checkpoint is saved, exit 75
    assert first.returncode == 75, err
    assert "preempted: stopped by SIGTERM: the run finished step " in err and "Continue this run from checkpoint-" in err, err
    continue_with = err.split("with:\n  ")[1].splitlines()[0]
    assert continue_with == f"tune run {run_dir / 'recipe.yaml'}"
    assert not (run_dir / LEASE).exists()

    again = subprocess.run([sys.executable, "-m", *shlex.split(continue_with)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "resuming the interrupted run" in again.stdout
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 40
    assert json.loads((run_dir / "manifest.json").read_text())["steps"] == 40
    assert not (run_dir / LEASE).exists()
