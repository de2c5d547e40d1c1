"""Presets carry LLM-jp-4's published architecture; twins keep its classes, keys and ids."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from tune.models.presets import PRESETS, close_preset_names, get_preset


def build_on_meta(preset):
    keys = dict(preset.config)
    config = AutoConfig.for_model(keys.pop("model_type"), **keys)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize(
    "name, params, architecture",
    [("llm-jp-4-8b", 8_590_200_832, "LlamaForCausalLM"), ("llm-jp-4-32b-a3b", 32_139_028_992, "Qwen3MoeForCausalLM")],
)
def test_real_presets_have_the_published_parameter_count(name, params, architecture):
    model = build_on_meta(get_preset(name))
    assert type(model).__name__ == architecture
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize("twin", [p for p in PRESETS.values() if p.is_tiny], ids=lambda p: p.name)
def test_twin_keeps_class_keys_and_special_ids_of_its_real_model(twin):
    real = get_preset(twin.twin_of)
    assert twin.architecture == real.architecture
    assert set(twin.config) == set(real.config)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id", "rms_norm_eps", "rope_theta", "tie_word_embeddings", "hidden_act"):
        assert twin.config[key] == real.config[key], key
    model = build_on_meta(twin)
    assert type(model).__name__ == real.architecture
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            assert module.out_features % 32 == 0, name  # bitsandbytes' CPU 4-bit repack needs it


def test_real_presets_name_the_released_checkpoints():
    assert get_preset("llm-jp-4-8b").hub_id("instruct") == "llm-jp/llm-jp-4-8b-instruct"
    assert get_preset("llm-jp-4-8b").hub_id(None) == "llm-jp/llm-jp-4-8b-base"
    assert set(get_preset("llm-jp-4-32b-a3b").hub_ids) == {"base", "thinking"}


def test_near_miss_preset_names_are_suggested():
    assert close_preset_names("tiny-llm-jp4-8b")[0] == "tiny-llm-jp-4-8b"
