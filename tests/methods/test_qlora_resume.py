"""QLoRA resumes exactly like the other methods: a run interrupted after a checkpoint continues with
bit-identical losses and adapter weights, and `final/` keeps the adapters' bf16.

Pins the workaround in tune/training/adapter_dtype.py: peft's adapter reload (Trainer's resume path)
casts the bf16 adapters TRL trains on a 4-bit base to fp32; before the fix the resumed steps were
1e-3 apart from an uninterrupted run's. Dense and MoE twins (the MoE one with 4-bit experts, its
LoRA on the fused experts), SFT and DPO.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tune.methods.run import run_recipe
from tune.recipe import load_recipe

pytestmark = pytest.mark.slow


def losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())}


def interrupt_after(run_dir: Path, step: int) -> None:
    """Leave ``run_dir`` as a run killed right after writing checkpoint-``step``."""
    for path in (run_dir / "manifest.json", run_dir / "final"):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    for checkpoint in (run_dir / "checkpoints").iterdir():
        if checkpoint.name.startswith("checkpoint-") and int(checkpoint.name.split("-")[1]) > step:
            shutil.rmtree(checkpoint)


def adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "final" / "adapter_model.safetensors")


def resumed_equals_uninterrupted(loaded) -> None:
    run_dir = Path(loaded.recipe.output.dir)
    run_recipe(loaded)
    uninterrupted, weights = losses(run_dir), adapter(run_dir)
    interrupt_after(run_dir, 3)
    run_recipe(loaded)
    resumed, resumed_weights = losses(run_dir), adapter(run_dir)
    assert sorted(resumed) == sorted(uninterrupted) == [1, 2, 3, 4, 5, 6]
    assert resumed == uninterrupted  # bit for bit, steps 4-6 included
    assert weights.keys() == resumed_weights.keys()
    for name, value in weights.items():
        assert value.dtype == resumed_weights[name].dtype == torch.bfloat16, name
        assert torch.equal(value, resumed_weights[name]), name


@pytest.mark.parametrize("model", ["tiny-llm-jp-4-8b", "tiny-llm-jp-4-32b-a3b"])
def test_qlora_sft_resumes_bit_identically(overfit_recipe, model):
    recipe = overfit_recipe(model, "qlora", lr=2e-3, steps=6)
    resumed_equals_uninterrupted(load_recipe(recipe, ["output.save_steps=3", "output.save_total_limit=3",
                                                      "data.datasets.0.weight=8"]))


def test_qlora_dpo_resumes_bit_identically(tmp_path):
    resumed_equals_uninterrupted(load_recipe("tiny/dpo-lora", [
        "method.peft=qlora", "train.precision=fp32", "train.max_steps=6", "train.per_device_batch_size=2",
        "data.max_seq_len=256", "output.save_steps=3", "output.save_total_limit=3", "logging.logging_steps=1",
        f"output.dir={tmp_path / 'run'}"]))
