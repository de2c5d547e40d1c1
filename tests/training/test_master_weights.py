"""`train.master_weights`: full fine-tuning keeps fp32 master weights and computes in bf16 (autocast on one
process), so one optimizer step at a small learning rate changes nearly every weight; `none` trains the bf16
weights directly, and most of those updates round away (tune.models.loading.weights_dtype,
tune.training.strategy).

One step of the tiny dense twin at lr 2e-5 (Adam's first step moves every weight with a gradient by about
lr), bf16 compute in both runs. Measured on the decoder layers' weights (the embedding's rows of tokens absent
from the batch get no gradient in either path): the fraction of elements whose value changed.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

RECIPE = "recipes/tiny/sft-full.yaml"
ONE_STEP = ["train.max_steps=1", "train.warmup_steps=0", "train.lr=2e-5", "train.min_lr=2e-6", "train.precision=bf16",
            "train.per_device_batch_size=2", "data.max_seq_len=256"]


def one_step(tmp_path, name: str, overrides: list[str]):
    """Train one step; return (fraction of decoder-layer weight elements changed, weight dtypes, mixed precision)."""
    from tune.methods.sft import build_sft_trainer
    from tune.recipe import load_recipe

    run_dir = tmp_path / name
    recipe = load_recipe(RECIPE, [*ONE_STEP, *overrides, f"output.dir={run_dir}"]).recipe
    trainer = build_sft_trainer(recipe, run_dir, printer=lambda line: None).trainer
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if ".layers." in n}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    changed = sum((after[n].detach() != before[n]).sum().item() for n in before)
    total = sum(t.numel() for t in before.values())
    dtypes = {str(after[n].dtype) for n in before}
    return changed / total, dtypes, trainer.accelerator.mixed_precision


def test_fp32_masters_change_nearly_every_weight_where_bf16_weights_do_not(tmp_path):
    fraction, dtypes, mixed = one_step(tmp_path, "fp32-masters", [])  # master_weights: fp32, the default
    assert dtypes == {"torch.float32"} and mixed == "bf16"  # fp32 weights, bf16 compute (autocast)
    assert fraction >= 0.99, f"fp32 masters: only {fraction:.1%} of the weights changed in one step"

    bf16_fraction, bf16_dtypes, _ = one_step(tmp_path, "bf16-weights", ["model.dtype=bfloat16",
                                                                           "train.master_weights=none"])
    assert bf16_dtypes == {"torch.bfloat16"}
    assert bf16_fraction <= 0.5, f"pure bf16: {bf16_fraction:.1%} of the weights changed in one step"
    print(f"changed in one step at lr 2e-5: fp32 masters {fraction:.2%}, bf16 weights {bf16_fraction:.2%}")


def test_full_recipe_refuses_16_bit_weights_with_fp32_masters(tmp_path, recipe_error):
    text = recipe_error(RECIPE, ["model.dtype=bfloat16"])
    assert "train.master_weights" in text and "model.dtype" in text
