"""Tiny twins are built locally, cached, reproducible, and load in plain transformers."""

import json

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from tune.models import tiny_twins
from tune.models.presets import get_preset


def test_twin_builds_offline_and_rebuilds_bit_identically(tmp_path, monkeypatch):
    preset = get_preset("tiny-llm-jp-4-32b-a3b")
    monkeypatch.setenv("TUNE_CACHE", str(tmp_path / "a"))
    first = tiny_twins.ensure_twin(preset)
    assert tiny_twins.ensure_twin(preset) == first  # cached: same folder, not rebuilt
    monkeypatch.setenv("TUNE_CACHE", str(tmp_path / "b"))
    second = tiny_twins.ensure_twin(preset)
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (first / "tokenizer.json").read_bytes() == (second / "tokenizer.json").read_bytes()


def test_moe_twin_is_saved_in_the_hubs_per_expert_layout_and_loads_plainly():
    folder = tiny_twins.ensure_twin(get_preset("tiny-llm-jp-4-32b-a3b"))
    keys = load_file(folder / "model.safetensors").keys()
    assert "model.layers.0.mlp.experts.7.down_proj.weight" in keys
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert type(model).__name__ == "Qwen3MoeForCausalLM" and model.config.num_experts == 8
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "こんにちは"}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    assert model(**ids).logits.shape[-1] == 4096
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [2, 13] and generation["pad_token_id"] == 4
