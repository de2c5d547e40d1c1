"""What the machine that will train must offer: checked by `tune run` at its start, before any data work.

A recipe is often validated on another machine than the one that trains it (on ABCI people run
`tune validate` on a login node without GPUs), so these checks cannot run at validation: `tune
validate` lists them as deferred (``deferred_checks``, printed by tune.plan), and ``check_machine`` runs
them in the training process, before the data is prepared and the model loads, refusing with one
UserError that names every key this machine cannot serve:

- `model.attn_implementation: flash_attention_*`: needs a CUDA GPU and the `flash_attn` package
  (transformers would refuse only once the model loads, after data preparation).
- `train.precision`: `fp16` needs a CUDA GPU (CPU autocast has no fp16 path worth training in);
  `bf16` on a CUDA GPU needs one that supports it (pre-Ampere cards do not). bf16 on CPU is
  allowed (CPU autocast supports it).
- `model.liger: true`: a CUDA GPU (tune.models.liger_patch.require_liger_device, which also
  honours Triton's CPU interpreter for the numerics tests).

``resolve_precision`` is the one place `train.precision: auto` becomes a concrete precision;
tune.training.arguments asks it.
"""

from __future__ import annotations

import importlib.util

from tune.config.schema import Recipe
from tune.errors import UserError


def deferred_checks(recipe: Recipe) -> list[str]:
    """What `tune validate` cannot know about the machine that will train ``recipe``, one item per
    key ``check_machine`` will check there (pure python: no torch)."""
    attention = recipe.model.attn_implementation
    precision = recipe.train.precision
    items = []
    if attention.startswith("flash_attention"):
        items.append(f"model.attn_implementation {attention} (needs a CUDA GPU and the flash_attn package)")
    if precision == "auto":
        items.append("train.precision auto (bf16 on a CUDA GPU that supports it, else fp32)")
    elif precision == "fp16":
        items.append("train.precision fp16 (needs a CUDA GPU)")
    elif precision == "bf16":
        items.append("train.precision bf16 (on a CUDA GPU, one that supports bf16)")
    if recipe.model.liger:
        items.append("model.liger (needs a CUDA GPU)")
    return items


def check_machine(recipe: Recipe) -> None:
    """Refuse (one UserError, one line per key) what this machine cannot run of ``recipe``:
    the attention kernel, the precision and Liger (module docstring). Imports torch; call it at
    the start of `tune run`, before any data work."""
    problems = machine_problems(recipe)
    if len(problems) == 1:
        raise UserError(problems[0])
    if problems:
        raise UserError("this machine cannot run the recipe as written:\n  " + "\n  ".join(problems))


def machine_problems(recipe: Recipe) -> list[str]:
    """One line per setting of ``recipe`` this machine cannot serve, each starting with its dotted key."""
    problems = []
    attention = attention_problem(recipe.model.attn_implementation)
    if attention:
        problems.append(attention)
    try:
        resolve_precision(recipe)
    except UserError as err:
        problems.append(str(err))
    if recipe.model.liger:
        from tune.models.liger_patch import require_liger_device

        try:
            require_liger_device()
        except UserError as err:
            problems.append(str(err))
    return problems


def attention_problem(attn_implementation: str) -> str | None:
    """Why this machine cannot run ``attn_implementation``, or None. The flash kernels need a CUDA
    GPU and the `flash_attn` package (found by importlib, not imported)."""
    if not attn_implementation.startswith("flash_attention"):
        return None
    import torch

    if not torch.cuda.is_available():
        return (f"model.attn_implementation: {attn_implementation} needs a CUDA GPU and this machine has none; "
                "use sdpa (the default) here, or run on a GPU machine")
    if importlib.util.find_spec("flash_attn") is None:
        return (f"model.attn_implementation: {attn_implementation} needs the flash_attn package, which is not "
                "installed; `pip install flash-attn`, or use sdpa")
    return None


def resolve_precision(recipe: Recipe) -> str:
    """`bf16`, `fp16` or `fp32` for ``recipe`` on this machine: `auto` means bf16 on a CUDA GPU that
    supports it, fp32 elsewhere. Refuses (UserError naming `train.precision`) fp16 without a CUDA
    GPU, and bf16 on a CUDA GPU without bf16 support."""
    import torch

    precision = recipe.train.precision
    has_gpu = torch.cuda.is_available()
    if precision == "auto":
        return "bf16" if has_gpu and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp16" and not has_gpu:
        raise UserError("train.precision: fp16 needs a CUDA GPU; use bf16 or fp32 on this machine")
    if precision == "bf16" and has_gpu and not torch.cuda.is_bf16_supported():
        raise UserError("train.precision: bf16 is not supported by this GPU; use fp16 or fp32 (or precision: auto)")
    return precision
