"""`model.liger: true`: Liger's Triton kernels on the loaded model, through liger-kernel's own API.

``apply_liger`` calls ``apply_liger_kernel_to_llama`` / ``apply_liger_kernel_to_qwen3_moe`` with
``model=`` (the table is tune.models.liger_kernels.KERNELS); fused linear cross entropy stays off.
Call it before peft wraps the model (tune.models.loading does). Liger also patches module globals:
every later model of that class in the same process (e.g. DPO's reference copy) runs Liger too.

Refuses (UserError naming `model.liger`): no CUDA GPU (``require_liger_device``; Triton's CPU
interpreter, ``TRITON_INTERPRET=1``, is the only exception, for the numerics tests), and a model
Liger cannot patch (tune.models.liger_kernels.config_problem; a hub id is only known here).

Why, and what patching means for the rest of the run: docs/liger.md
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
