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
