"""QLoRA loading (tune.models.quantization) and the 4-bit experts patch (tune.models.quantized_experts),
on both tiny twins: what is stored in 4 bits, the AVX512-BF16 trap and its guard, exact logits, gradients."""

import pytest
import torch

from tune.recipe import load_recipe
from tune.models.adapters import lora_config
from tune.models.checkpoints import locate_checkpoint
from tune.models.loading import load_model
from tune.models.quantization import bnb_config, guard_cpu_repack
from tune.models.quantized_experts import NF4ExpertWeight, expert_weights

pytestmark = pytest.mark.slow


def qlora_model(name: str, *overrides: str):
    recipe = load_recipe(name, ["train.precision=fp32", *overrides]).recipe
    checkpoint = locate_checkpoint(recipe.model)
    return recipe, checkpoint, load_model(recipe, checkpoint)


def lora_grads(model, ids) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    model(input_ids=ids, labels=ids).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def ids_for(model, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(20, model.config.vocab_size, (2, 24), generator=generator)


def test_8b_twin_loads_every_decoder_linear_in_nf4_double_quant_frozen_and_guarded():
    import bitsandbytes as bnb

    recipe, _, model = qlora_model("tiny/qlora")
    linears = [m for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(linears) == 7 * model.config.num_hidden_layers
    for layer in linears:
        state = layer.weight.quant_state
        assert state.quant_type == "nf4" and state.nested and layer.compute_dtype == torch.bfloat16
        assert layer.support_avx512bf16_for_cpu is False
    assert not any(p.requires_grad for p in model.parameters())  # prepare_model_for_kbit_training froze the base
    plain = {n: p.dtype for n, p in model.named_parameters() if p.dtype != torch.uint8}
    assert plain and set(plain.values()) == {torch.float32}, plain  # embeddings, head, norms upcast by peft
    assert getattr(model, "is_loaded_in_4bit", False)  # what TRL checks to treat the model as quantized


def _grads_after_an_evaluation(guarded: bool):
    from peft import get_peft_model

    recipe, _, model = qlora_model("tiny/qlora")
    if not guarded:
        for module in model.modules():
            if hasattr(module, "support_avx512bf16_for_cpu"):
                module.support_avx512bf16_for_cpu = True  # bitsandbytes' own default on this CPU
    torch.manual_seed(0)
    model = get_peft_model(model, lora_config(recipe))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)  # non-zero B: every LoRA weight gets a gradient
    model.train()
    ids = ids_for(model)
    before = lora_grads(model, ids)
    model.eval()
    with torch.no_grad():
        model(input_ids=ids)  # what Trainer.evaluate does
    model.train()
    return before, lora_grads(model, ids)


def test_lora_gradients_survive_an_evaluation_with_the_guard():
    before, after = _grads_after_an_evaluation(guarded=True)
    assert before.keys() == after.keys() and len(before) == 2 * 7 * 2
    for name in before:
        assert after[name].abs().sum() > 0, name
        assert torch.allclose(before[name], after[name], rtol=1e-4, atol=1e-6), name


def test_avx512bf16_trap_still_there_without_the_guard():
    """Pins bitsandbytes 0.50.2's CPU repack trap: when this fails, upstream fixed it and
    tune.models.quantization.guard_cpu_repack can go."""
    from bitsandbytes.functional import has_avx512bf16

    if not has_avx512bf16():
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes never repacks here")
    before, after = _grads_after_an_evaluation(guarded=False)
    changed = [n for n in before if not torch.allclose(before[n], after.get(n, torch.zeros_like(before[n])), rtol=1e-3, atol=1e-5)]
    assert changed, "evaluating no longer changes the LoRA gradients: the trap is fixed upstream"


def test_bitsandbytes_alone_leaves_the_fused_experts_unquantized():
    """Pins why tune.models.quantized_experts exists: when this fails, bitsandbytes quantizes them itself."""
    from transformers import AutoModelForCausalLM

    recipe = load_recipe("tiny/moe-qlora").recipe
    plain = AutoModelForCausalLM.from_pretrained(locate_checkpoint(recipe.model).folder, quantization_config=bnb_config(recipe))
    experts = {n: p.dtype for n, p in plain.named_parameters() if ".mlp.experts." in n}
    assert experts and all(dtype.is_floating_point for dtype in experts.values()), experts


def test_moe_experts_are_stored_in_4bit_and_logits_match_their_dequantized_values():
    from transformers import AutoModelForCausalLM

    recipe, checkpoint, model = qlora_model("tiny/moe-qlora")
    config = model.config
    experts = expert_weights(model)
    assert len(experts) == 2 * config.num_hidden_layers
    for name, weight in experts.items():
        numel = weight.numel()
        assert weight.packed.dtype == torch.uint8 and weight.packed.numel() == numel // 2
        assert weight.quant_state.quant_type == "nf4" and weight.quant_state.nested
        # packed nibbles + one uint8 absmax per 64 values + fixed code tables (1.1 KiB)
        assert numel / 2 < weight.storage_bytes() <= numel / 2 + numel / 64 + 1200, (name, weight.storage_bytes())
        assert not weight.requires_grad

    reference = AutoModelForCausalLM.from_pretrained(checkpoint.folder, quantization_config=bnb_config(recipe))
    guard_cpu_repack(reference)
    for name, weight in experts.items():
        module, _, attribute = name.rpartition(".")
        getattr(reference.get_submodule(module), attribute).data = weight.dequantize().to(torch.float32)
    for name, p in reference.named_parameters():  # peft's k-bit preparation upcast these in `model`
        if p.dtype in (torch.bfloat16, torch.float16):
            p.data = p.data.float()
    ids = ids_for(model)
    with torch.no_grad():
        quantized, dense = model(ids).logits, reference(ids).logits
    assert torch.allclose(quantized, dense, rtol=0, atol=1e-5), (quantized - dense).abs().max()
    # and the 4-bit values are a real approximation of the checkpoint's experts, not noise
    original = AutoModelForCausalLM.from_pretrained(checkpoint.folder)
    name = next(iter(experts))
    exact = original.get_parameter(name)
    error = (experts[name].dequantize().float() - exact).abs().mean() / exact.abs().mean()
    assert 0 < error < 0.15, error


def test_lora_on_4bit_experts_gets_gradients_and_leaves_them_4bit():
    from peft import get_peft_model

    recipe, _, model = qlora_model("tiny/moe-qlora")
    torch.manual_seed(0)
    model = get_peft_model(model, lora_config(recipe))
    model.train()
    ids = ids_for(model)
    grads = lora_grads(model, ids)
    expert_b = {n: g for n, g in grads.items() if ".mlp.experts." in n and "lora_B" in n}
    assert len(expert_b) == 2 * model.config.num_hidden_layers
    assert all(g.abs().sum() > 0 for g in expert_b.values()), expert_b.keys()
    grads = lora_grads(model, ids)  # a second pass: peft removed its parametrization, the 4-bit storage is intact
    assert all(isinstance(p, NF4ExpertWeight) for n, p in model.named_parameters() if n.endswith(("gate_up_proj", "down_proj")))
    assert len(expert_weights(model)) == 2 * model.config.num_hidden_layers


def test_4bit_experts_refuse_writes():
    _, _, model = qlora_model("tiny/moe-qlora")
    weight = next(iter(expert_weights(model).values()))
    with pytest.raises(RuntimeError, match="frozen 4-bit expert weight"):
        with torch.no_grad():
            weight.add_(1.0)
