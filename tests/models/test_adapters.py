"""LoRA targets resolved from the architecture alone match what peft builds on the loaded model."""

import pytest
import torch
from peft import get_peft_model
from peft.tuners.lora import Linear as LoraLinear
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
    ("tiny-llm-jp-4-8b", ["method.lora.dora=true"]),
    ("tiny-llm-jp-4-8b", ["method.lora.dora=true", "method.lora.targets=[q_proj, down_proj]", "method.lora.r=4"]),
    ("tiny-llm-jp-4-32b-a3b", ["method.lora.dora=true", "method.lora.experts=false"]),
    ("tiny-llm-jp-4-32b-a3b", ["method.lora.rslora=true"]),
]


@pytest.mark.parametrize("model, overrides", CASES)
def test_resolved_count_equals_peft_on_the_loaded_model(model, overrides):
    recipe = load_recipe("tiny/sft-lora", [f"model.name={model}", *overrides]).recipe
    targets = resolve_lora_targets(recipe)
    wrapped = get_peft_model(AutoModelForCausalLM.from_pretrained(ensure_twin(get_preset(model))), lora_config(recipe))
    assert check_adapted(wrapped, recipe) == targets.trainable
    magnitudes = [name for name, p in wrapped.named_parameters() if p.requires_grad and "lora_magnitude_vector" in name]
    adapted_linears = [m for m in wrapped.modules() if isinstance(m, LoraLinear)]
    assert len(magnitudes) == len(adapted_linears) * ("method.lora.dora=true" in overrides)  # one per adapted Linear
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


def test_dora_on_a_4bit_base_counts_what_peft_builds():
    """QLoRA + DoRA: peft gives Linear4bit layers their magnitude vectors (dequantizing the base to
    measure its norm); the plan counts them as on a 16-bit base."""
    from tune.models.checkpoints import locate_checkpoint
    from tune.models.loading import load_model

    recipe = load_recipe("tiny/qlora", ["method.lora.dora=true", "train.precision=fp32"]).recipe
    wrapped = get_peft_model(load_model(recipe, locate_checkpoint(recipe.model)), lora_config(recipe))
    assert check_adapted(wrapped, recipe) == resolve_lora_targets(recipe).trainable
    assert any("lora_magnitude_vector" in name for name, _ in wrapped.named_parameters())


def test_dora_and_rslora_show_in_the_plan_and_dora_adds_one_magnitude_per_output_feature():
    plain = resolve_lora_targets(load_recipe("tiny/sft-lora", ["model.name=llm-jp-4-8b"]).recipe)
    dora = load_recipe("tiny/sft-lora", ["model.name=llm-jp-4-8b", "method.lora.dora=true", "method.lora.rslora=true"]).recipe
    # per layer of 8B: q 4096 + k 1024 + v 1024 + o 4096 + gate 14336 + up 14336 + down 4096 outputs, 32 layers
    assert resolve_lora_targets(dora).trainable - plain.trainable == 32 * (4096 + 1024 + 1024 + 4096 + 14336 * 2 + 4096)
    assert lora_plan(dora)[2] == "LoRA variant: DoRA, rsLoRA (scale alpha/sqrt(r) = 8)"  # alpha 32, r 16
    assert len(lora_plan(load_recipe("tiny/sft-lora").recipe)) == 2  # plain LoRA prints no variant line


@pytest.mark.parametrize("overrides, message", [
    (["method.lora.dora=true"], "method.lora.dora: peft gives DoRA to Linear layers only, not to the fused MoE experts "
     "(target_parameters); set method.lora.experts: false"),
    (["method.lora.experts=false", "method.lora.router=true", "method.lora.dora=true"],
     "method.lora.dora: peft cannot give DoRA to the MoE router (adapted as a parameter, not a Linear); "
     "set method.lora.router: false"),
])
def test_dora_where_peft_cannot_give_it_is_refused_at_load(overrides, message, recipe_error, repo_root):
    text = recipe_error(repo_root / "recipes" / "tiny" / "moe-lora.yaml", overrides)
    assert message in text and text.count("\n") == 0, text
    assert text.startswith("command-line override `method.lora.dora=true`: "), text


@pytest.mark.parametrize("overrides", [[], ["method.lora.experts=false", "method.lora.router=true"]])
def test_peft_itself_refuses_dora_where_validation_does(overrides):
    """The refusals above mirror peft 0.21 (its lora.ParamWrapper, for fused experts and the v5 router):
    when peft learns DoRA there, this fails and the refusal can go."""
    config = lora_config(load_recipe("tiny/moe-lora", overrides).recipe)  # built without DoRA, then given it
    config.use_dora = True
    with pytest.raises(ValueError, match="ParamWrapper does not work with use_dora=True"):
        get_peft_model(AutoModelForCausalLM.from_pretrained(ensure_twin(get_preset("tiny-llm-jp-4-32b-a3b"))), config)


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


def test_dora_refused_in_a_file_names_the_line_of_dora(write_recipe, recipe_error):
    path = write_recipe("""\
        model: {name: tiny-llm-jp-4-32b-a3b}
        method:
          peft: qlora
          lora:
            dropout: 0
            dora: true
        data: {datasets: [{path: tune:samples/demo-chat.jsonl}]}
        """)
    assert recipe_error(path).startswith(f"{path}:6:11: method.lora.dora: peft gives DoRA to Linear layers only")
