"""`tune run` as a user types it: the demo recipe trains, shows progress and says where it saved."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_recipe_runs_from_the_command_line_with_progress(tmp_path, repo_root):
    done = subprocess.run(
        [sys.executable, "-m", "tune", "run", "recipes/tiny/sft-lora.yaml", "train.max_steps=6",
         "logging.logging_steps=2", f"output.dir={tmp_path / 'demo'}"],
        capture_output=True, text=True, cwd=repo_root, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("step")]
    assert [line.split()[1] for line in lines] == ["1/6", "2/6", "4/6", "6/6"]
    assert all("loss" in line and "tok/s" in line and "ETA" in line for line in lines)
    assert f"saved LoRA adapter + tokenizer to {tmp_path / 'demo' / 'final'}" in done.stdout
    manifest = json.loads((tmp_path / "demo" / "manifest.json").read_text())
    assert manifest["steps"] == 6 and manifest["peft"] == "lora"


@pytest.mark.slow
def test_what_this_cpu_machine_cannot_run_is_refused_at_run_start_before_any_data_work(tmp_path, repo_root):
    """`tune validate` defers these (a login node is not the training machine); `tune run` refuses
    them, all in one message, before it prepares data or loads the model: nothing lands in the data cache."""
    import os

    env = {**os.environ, "TUNE_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    line = ["tiny/sft-lora", "model.attn_implementation=flash_attention_2", "train.precision=fp16", f"output.dir={tmp_path / 'run'}"]
    validated = subprocess.run([sys.executable, "-m", "tune", "validate", *line], capture_output=True, text=True,
                               cwd=repo_root, timeout=120, env=env)
    assert validated.returncode == 0 and "plan: deferred to `tune run` on the machine that trains" in validated.stderr
    done = subprocess.run([sys.executable, "-m", "tune", "run", *line], capture_output=True, text=True,
                          cwd=repo_root, timeout=300, env=env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "model.attn_implementation: flash_attention_2 needs a CUDA GPU" in done.stderr
    assert "train.precision: fp16 needs a CUDA GPU" in done.stderr
    assert not (tmp_path / "cache" / "data").exists()
