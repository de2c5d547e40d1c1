"""LoRA targets resolved from the architecture alone match what peft builds on the loaded model."""

import pytest
import torch
from peft import get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM

from tune.recipe import load_recipe
from tune.models.adapters import check_adapted, lora_config, lora_plan, resolve_lora_targets
from tune.models.shapes import parameter_count
from tune.models.presets import PRESETS, get_preset
from tune.models.tiny_twins import ensure_twin


@pytest.mark.parametrize("name", list(PRESETS))
def test_parameter_count_matches_the_model_transformers_builds(name):
    keys = dict(get_preset(name).config)
    config = AutoConfig.for_model(keys.pop("model_type"), **keys)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    assert parameter_count(get_preset(name).config) == sum(p.numel() for p in model.parameters())


CASES = [
    ("tiny-llm-jp-4-8b", []),
    ("tiny-llm-jp-4-8b", ["method.lora.targets=[q_proj, v_proj]", "method.lora.r=4"]),
    ("tiny-llm-jp-4-32b-a3b", []),
    ("tiny-llm-jp-4-32b-a3b", ["method.lora.router=true"]),
    ("tiny-llm-jp-4-32b-a3b", ["method.lora.experts=false"]),
]


@pytest.mark.parametrize("model, overrides", CASES)
def test_resolved_count_equals_peft_on_the_loaded_model(model, overrides):
    recipe = load_recipe("tiny/sft-lora", [f"model.name={model}", *overrides]).recipe
    targets = resolve_lora_targets(recipe)
    wrapped = get_peft_model(AutoModelForCausalLM.from_pretrained(ensure_twin(get_preset(model))), lora_config(recipe))
    assert check_adapted(wrapped, recipe) == targets.trainable
    adapted = {name.split(".lora_")[0] for name, p in wrapped.named_parameters() if p.requires_grad}
    assert any(name.endswith("mlp.gate") for name in adapted) == ("method.lora.router=true" in overrides)
    has_experts = any(".mlp.experts" in name for name in adapted)
    assert has_experts == (model.endswith("a3b") and "method.lora.experts=false" not in overrides)


def test_real_presets_plan_instantly_with_experts_and_without_router():
    lines = lora_plan(load_recipe("tiny/sft-lora", ["model.name=llm-jp-4-32b-a3b"]).recipe)
    assert lines[0] == "LoRA targets: q_proj, k_proj, v_proj, o_proj; experts: mlp.experts.gate_up_proj, mlp.experts.down_proj"
    assert "of 32,139,028,992" in lines[1]
    dense = lora_plan(load_recipe("tiny/sft-lora", ["model.name=llm-jp-4-8b", "method.lora.r=8"]).recipe)
    assert dense[1].startswith("trainable parameters: 20,971,520 of 8,590,200,832")


@pytest.mark.parametrize("overrides, message", [
    (["method.lora.experts=true"], "method.lora.experts: tiny-llm-jp-4-8b is a dense model"),
    (["method.lora.targets=[qproj]"], "did you mean 'q_proj'"),
    (["model.name=tiny-llm-jp-4-32b-a3b", "method.lora.targets=[q_proj, gate_proj]"], "method.lora.experts: true"),
    (["model.name=tiny-llm-jp-4-32b-a3b", "method.lora.targets=[q_proj, gate]"], "method.lora.router: true"),
    (["model.name=tiny-llm-jp-4-32b-a3b", "method.lora.dropout=0.05"], "method.lora.dropout: 0.05 with adapted MoE experts"),
])
def test_impossible_targets_are_refused_at_load_with_the_key(overrides, message, recipe_error, repo_root):
    text = recipe_error(repo_root / "recipes" / "tiny" / "sft-lora.yaml", overrides)
    assert message in text and text.count("\n") == 0, text
    assert text.startswith(f"command-line override `{overrides[-1]}`: "), text


def test_a_refused_target_written_in_the_file_names_its_line(write_recipe, recipe_error):
    path = write_recipe("""\
        model: {name: tiny-llm-jp-4-32b-a3b}
        method:
          peft: lora
          lora:
            dropout: 0.1
        data: {datasets: [{path: tune:samples/demo-chat.jsonl}]}
        """)
    assert recipe_error(path).startswith(f"{path}:5:14: method.lora.dropout: 0.1 with adapted MoE experts")
