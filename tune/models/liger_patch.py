"""`model.liger: true`: Liger's Triton kernels on the loaded model, through liger-kernel's own API.

``apply_liger`` calls ``apply_liger_kernel_to_llama`` / ``apply_liger_kernel_to_qwen3_moe`` with
``model=`` (the table and the reasons are in tune.models.liger_kernels): RMSNorm, RoPE and SwiGLU on
Llama; RMSNorm (q/k norms included), RoPE and the fused MoE experts (LigerExperts) on Qwen3-MoE.
Fused linear cross entropy stays off: TRL's trainers compute the loss with their own fused LM head.

What this means for the rest of the run:
    - Liger patches module globals as well as the instance (``apply_rotary_pos_emb``, the RMSNorm,
      MLP and experts classes of the modeling module): every later model of that class in the same
      process runs Liger too, e.g. DPO's reference copy. Tests isolate Liger in a subprocess.
    - The experts' forward is Liger's, bound on each instance, so transformers' `experts_implementation`
      (grouped_mm, batched_mm, eager) no longer chooses anything on a patched model.
    - Apply before peft wraps the model (tune.models.loading does): peft's LoRA on Linear layers is
      called from Liger's SwiGLU forward, and peft's ``target_parameters`` LoRA on the fused experts
      parametrizes ``gate_up_proj`` / ``down_proj``, which Liger's experts forward reads, so the
      adapters train through Liger's kernel (tests/models/test_liger.py proves the gradients).

Refuses (UserError naming `model.liger`): no CUDA GPU (``require_liger_device``; Triton's CPU
interpreter, ``TRITON_INTERPRET=1``, is the only exception, for the numerics tests), and a model
Liger cannot patch (tune.models.liger_kernels.config_problem; a hub id is only known here).
"""

from __future__ import annotations

import os

from tune.config.schema import Recipe
from tune.errors import UserError
from tune.models.liger_kernels import KERNELS, config_problem

NO_GPU = ("model.liger: Liger's kernels need a CUDA GPU and this machine has none; "
          "set model.liger=false (the run then uses more activation memory than planned)")


def require_liger_device() -> None:
    """Refuse without a CUDA GPU, unless Triton's CPU interpreter is on (``TRITON_INTERPRET=1``).

    Called before the model loads: a silent fallback to plain kernels would change the memory
    profile the user planned for, and finding out after minutes of loading is worse.
    """
    import torch

    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        raise UserError(NO_GPU)


def apply_liger(model, recipe: Recipe) -> list[str]:
    """Patch ``model`` (a LlamaForCausalLM or Qwen3MoeForCausalLM, not yet wrapped by peft) with
    Liger's kernels in place; returns the kernel names applied (the plan's words)."""
    require_liger_device()
    problem = config_problem(model.config.to_dict())
    if problem:
        raise UserError(f"model.liger: {recipe.model.name}: {problem}")
    import liger_kernel.transformers as liger

    function, kernels = KERNELS[type(model).__name__]
    getattr(liger, function)(
        rope=True,
        rms_norm=True,
        swiglu=True,
        cross_entropy=False,
        fused_linear_cross_entropy=False,
        model=model,
    )
    return list(kernels)


def liger_modules(model) -> dict[str, int]:
    """How many modules of ``model`` run a Liger forward, by Liger class name (what tests and the
    GPU check read to know the kernels are really in place)."""
    counts: dict[str, int] = {}
    for module in model.modules():
        name = module._get_name()
        if name.startswith("Liger"):
            counts[name] = counts.get(name, 0) + 1
    return counts
