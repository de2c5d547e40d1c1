"""SFT on the tiny LLM-jp-4-32B-A3B twin: experts adapted and trained, router aux loss on and logged apart."""

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from tune.recipe import load_recipe
from tune.methods.run import run_recipe

pytestmark = pytest.mark.slow
MOE = "tiny-llm-jp-4-32b-a3b"


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_moe_lora_trains_the_experts_and_logs_the_aux_loss_apart(overfit_recipe):
    loaded = load_recipe(overfit_recipe(MOE, "lora", lr=5e-3, steps=20))
    assert loaded.recipe.model.router_aux_loss_coef == 0.01 and loaded.recipe.model.output_router_logits
    outcome = run_recipe(loaded)
    records = metrics(Path(loaded.recipe.output.dir))
    # the twin's frozen random head caps how far LoRA alone can go (8.3 -> ~6.3); 1.5 nats is well clear of noise
    assert records[-1]["loss"] < records[0]["loss"] - 1.5, [r["loss"] for r in records]

    for record in records:
        assert math.isfinite(record["aux_loss"]) and record["aux_loss"] > 0
        assert record["lm_loss"] == pytest.approx(record["loss"] - 0.01 * record["aux_loss"])

    # LoRA B starts at zero: a non-zero B on every layer's experts means gradients reached them
    expert_b = {n: p for n, p in outcome.model.named_parameters() if ".mlp.experts" in n and "lora_B" in n}
    assert {n.split(".mlp.")[0] for n in expert_b} == {"base_model.model.model.layers.0", "base_model.model.model.layers.1"}
    assert all(p.abs().sum() > 0 for p in expert_b.values()), [n for n, p in expert_b.items() if not p.abs().sum()]
    router = [n for n, p in outcome.model.named_parameters() if p.requires_grad and n.endswith("mlp.gate.weight")]
    assert router == []


def test_moe_full_sft_trains_every_expert_and_saves_the_hub_layout(overfit_recipe):
    from transformers import AutoModelForCausalLM

    from tune.models.presets import get_preset
    from tune.models.tiny_twins import ensure_twin

    loaded = load_recipe(overfit_recipe(MOE, "none", lr=3e-3, steps=30))
    outcome = run_recipe(loaded)
    run_dir = Path(loaded.recipe.output.dir)
    records = metrics(run_dir)
    assert records[-1]["loss"] < 0.35 * records[0]["loss"], [r["loss"] for r in records]
    assert all(math.isfinite(r["aux_loss"]) for r in records)

    start = AutoModelForCausalLM.from_pretrained(ensure_twin(get_preset(MOE)))
    trained = dict(outcome.model.named_parameters())
    for name in ("model.layers.0.mlp.experts.gate_up_proj", "model.layers.1.mlp.experts.down_proj", "model.layers.0.mlp.gate.weight"):
        assert not torch.equal(trained[name].detach(), dict(start.named_parameters())[name]), name

    with safe_open(str(run_dir / "final" / "model.safetensors"), "pt") as handle:
        keys = set(handle.keys())
    assert "model.layers.0.mlp.experts.7.gate_proj.weight" in keys and not any(k.endswith("gate_up_proj") for k in keys)
    reloaded = AutoModelForCausalLM.from_pretrained(run_dir / "final")
    assert torch.equal(dict(reloaded.named_parameters())["model.layers.1.mlp.experts.down_proj"],
                       trained["model.layers.1.mlp.experts.down_proj"].detach())


def test_router_aux_loss_off_is_not_added_nor_logged(overfit_recipe):
    loaded = load_recipe(overfit_recipe(MOE, "lora", lr=5e-3, steps=2), ["model.output_router_logits=false"])
    run_recipe(loaded)
    assert all("aux_loss" not in r for r in metrics(Path(loaded.recipe.output.dir)))


def test_router_keys_on_a_dense_model_are_refused_with_the_key(overfit_recipe, recipe_error):
    text = recipe_error(overfit_recipe("tiny-llm-jp-4-8b", "lora", lr=5e-3, steps=2), ["model.router_aux_loss_coef=0.01"])
    assert "model.router_aux_loss_coef" in text and "dense model without a router" in text
