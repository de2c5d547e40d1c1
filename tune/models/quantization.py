"""Load the base model for QLoRA (`method.peft: qlora`): 4-bit weights, frozen, ready for k-bit training.

What ``load_quantized`` does, in order:
    1. Loads through ``BitsAndBytesConfig`` (``bnb_config``): every decoder-layer Linear in 4 bits
       (``method.qlora``: quant_type, double_quant, compute_dtype); head, embeddings, norms and MoE
       router stay in ``model.dtype``.
    2. Qwen3-MoE: quantizes the fused 3D expert weights too (tune.models.quantized_experts).
    3. ``guard_cpu_repack``: guards every ``bnb.nn.Linear4bit`` against the AVX512-BF16 trap
       (bitsandbytes 0.50.2 on CPU: after one evaluation the gradient to the layer's input is lost).
    4. ``peft.prepare_model_for_kbit_training``: freezes the base, casts the remaining 16-bit
       parameters to fp32, turns on gradient checkpointing when ``train.gradient_checkpointing``
       (TRL 1.16 does not call it for an instantiated model, so it is done here, once).

Refuses: 4-bit on a device bitsandbytes does not support (its own error, left as is).

Why, with the AVX512-BF16 trap and the tests that pin it and its fix: docs/qlora.md
"""

from __future__ import annotations

import os

from tune.config.schema import Recipe
from tune.models.checkpoints import Checkpoint


def bnb_config(recipe: Recipe):
    """transformers' BitsAndBytesConfig for the recipe's `method.qlora` settings."""
    import torch
    from transformers import BitsAndBytesConfig

    qlora = recipe.method.qlora
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=qlora.quant_type,
        bnb_4bit_use_double_quant=qlora.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, qlora.compute_dtype),
    )


def load_quantized(recipe: Recipe, checkpoint: Checkpoint, **kwargs):
    """The 4-bit, frozen, k-bit-prepared causal LM of ``checkpoint`` (steps 1-4 of the module docstring).

    ``kwargs`` go to ``from_pretrained`` (dtype, attention kernel, router overrides). On a GPU the
    model is placed on this process's device (``LOCAL_RANK``), as bitsandbytes needs.
    """
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    from tune.models.quantized_experts import quantize_experts

    if torch.cuda.is_available():
        kwargs.setdefault("device_map", {"": int(os.environ.get("LOCAL_RANK", "0"))})
    model = AutoModelForCausalLM.from_pretrained(checkpoint.folder, quantization_config=bnb_config(recipe), **kwargs)
    quantize_experts(model, recipe.method.qlora.quant_type, recipe.method.qlora.double_quant)
    guard_cpu_repack(model)
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=recipe.train.gradient_checkpointing)


def guard_cpu_repack(model) -> int:
    """Turn off bitsandbytes' in-place CPU inference repack on every Linear4bit of ``model``
    (the AVX512-BF16 trap, docs/qlora.md); returns how many layers were guarded."""
    import bitsandbytes as bnb

    guarded = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            guarded += 1
    return guarded
