"""tune.models.memory: the memory `tune validate` states, against loaded tiny twins and by arithmetic."""

import pytest

from tune.recipe import load_recipe
from tune.models.memory import GIB, memory_estimate, memory_plan


def bytes_held(model) -> int:
    """Bytes the loaded model really holds: 4-bit data with its constants, everything else as stored."""
    import torch

    from tune.models.quantized_experts import NF4ExpertWeight

    total = 0
    for p in model.parameters():
        if isinstance(p, NF4ExpertWeight):
            total += p.storage_bytes()
        elif hasattr(p, "quant_state") and p.quant_state is not None:
            total += p.numel() * p.element_size()
            total += sum(v.numel() * v.element_size() for v in p.quant_state.as_dict(packed=True).values()
                         if isinstance(v, torch.Tensor))
        else:
            total += p.numel() * p.element_size()
    return total


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny/qlora", "tiny/moe-qlora", "tiny/sft-lora", "tiny/moe-lora"])
def test_weights_figure_matches_the_loaded_twin(name):
    from tune.models.checkpoints import locate_checkpoint
    from tune.models.loading import load_model

    recipe = load_recipe(name).recipe
    model = load_model(recipe, locate_checkpoint(recipe.model))
    estimate = memory_estimate(recipe, on_gpu=False)
    assert estimate.weight_bytes == pytest.approx(bytes_held(model), rel=0.02)


def gib(recipe_name: str, **kw) -> float:
    return memory_estimate(load_recipe(recipe_name).recipe, **kw).weight_bytes / GIB


def test_real_presets_by_arithmetic():
    # 8B: 6.98B decoder Linear params at ~0.516 bytes (nf4 + double-quant constants) = 3.35 GiB,
    # plus 1.61B embedding + head params that peft's k-bit preparation keeps in fp32 = 6.0 GiB.
    assert gib("llm-jp-4-8b/qlora") == pytest.approx(3.35 + 6.0, abs=0.05)
    assert gib("llm-jp-4-8b/sft-lora") == pytest.approx(8_590_200_832 * 2 / GIB, rel=1e-6)  # bf16
    # 32B-A3B: experts 30.2B params in nf4 = 14.5 GiB, attention 0.92B = 0.44 GiB, fp32 embeddings/head 3.75 GiB
    assert 17 < gib("llm-jp-4-32b-a3b/qlora") < 19
    assert gib("llm-jp-4-32b-a3b/qlora", quantize_experts=False) > 60
    assert gib("llm-jp-4-32b-a3b/lora") == pytest.approx(32_139_028_992 * 2 / GIB, rel=1e-6)


def test_plan_lines_name_what_is_4bit_and_the_trainable_states():
    lines = memory_plan(load_recipe("llm-jp-4-32b-a3b/qlora").recipe)
    assert "30.20B expert params in nf4 14.51 GiB" in lines[0]
    assert "quantized by tune.models.quantized_experts" in lines[1] and "loading peaks at 58.59 GiB" in lines[1]
    assert lines[2].startswith("memory: LoRA 0.27B params in bfloat16") and "adamw_torch states 1.00 GiB" in lines[2]
    # full fine-tuning keeps fp32 master weights (train.master_weights: fp32): 4 + 4 + 8 bytes per parameter
    full = memory_plan(load_recipe("llm-jp-4-8b/sft-full", ["launch.strategy=fsdp2"]).recipe)
    assert "trainable 8.59B params in float32 32.00 GiB, gradients 32.00 GiB, adamw_torch states 64.00 GiB" in full[-2]
    assert full[-1].startswith("memory per GPU under launch.strategy fsdp2 over 8 processes: ")
    assert "optimizer states 8.00 GiB" in full[-1] and "`tune plan`" in full[-1]


def test_validate_prints_the_memory_plan_without_torch():
    import subprocess
    import sys

    code = ("import sys; from tune.recipe import load_recipe; from tune.plan import plan_lines; "
            "lines = plan_lines(load_recipe('llm-jp-4-32b-a3b/qlora').recipe); "
            "assert 'torch' not in sys.modules; print(*[l for l in lines if l.startswith('memory')], sep='\\n')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("memory") == 3
