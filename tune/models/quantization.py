"""Load the base model for QLoRA (`method.peft: qlora`): 4-bit weights, frozen, ready for k-bit training.

What ``load_quantized`` does, in order:
    1. Loads the checkpoint through transformers' ``BitsAndBytesConfig``: every Linear of the
       decoder layers in 4 bits (``method.qlora.quant_type``, nf4 by default; double quantization of
       the constants, ``double_quant``) computing in ``compute_dtype`` (bf16 by default), as LLM-jp's
       QLoRA recipes do. bitsandbytes leaves the output head, the embeddings, the norms and the MoE
       router in ``model.dtype``.
    2. Qwen3-MoE: quantizes the fused 3D expert weights too (tune.models.quantized_experts), which
       bitsandbytes leaves in 16 bits (~30B of LLM-jp-4 32B-A3B's 32B parameters).
    3. Guards every ``bnb.nn.Linear4bit`` against the AVX512-BF16 trap (below).
    4. ``peft.prepare_model_for_kbit_training``: freezes the base, casts the remaining 16-bit
       parameters (embeddings, head, norms, router) to fp32 and, with
       ``train.gradient_checkpointing``, turns checkpointing on with input gradients. TRL 1.16's
       SFTTrainer does not call it for an instantiated model (it only casts the LoRA weights of a
       quantized model to bf16), so it is done here, once.

The AVX512-BF16 trap (bitsandbytes 0.50.2 on CPU): on a CPU with AVX512-BF16, one forward of a
``Linear4bit`` in ``eval()`` under ``no_grad`` (any evaluation) repacks its weight into an
inference layout, in place. Every later forward then runs a kernel with no autograd formula:
training goes on, but the gradient to the layer's input is silently lost, so the LoRA weights of
every layer below stop learning (only a "gemv_4bit ... autograd kernel was not registered" warning
says so). Setting ``support_avx512bf16_for_cpu = False`` on every Linear4bit turns that repack
off; it costs nothing on GPUs (the flag is read on CPU only). tests/models/test_qlora.py pins both
the trap (still there without the guard) and the fix.

Refuses: 4-bit on a device bitsandbytes does not support (its own error, left as is: our
environment's fault, not the recipe's).
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
    (the AVX512-BF16 trap of the module docstring); returns how many layers were guarded."""
    import bitsandbytes as bnb

    guarded = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            guarded += 1
    return guarded
