"""Patch: store Qwen3-MoE's fused expert weights in 4-bit (nf4/fp4) and dequantize them on use.

Why this file exists: bitsandbytes quantizes ``nn.Linear`` layers only, so it leaves the fused 3D
experts (``gate_up_proj`` / ``down_proj``, ~30.2B of LLM-jp-4 32B-A3B's 32.1B parameters) in 16
bits; ``test_qlora.py`` pins that (when bitsandbytes starts quantizing them, the test fails and this
file can go).

``quantize_experts`` replaces each by an ``nn.Parameter`` wrapping ``NF4ExpertWeight``: 4-bit
storage (``bitsandbytes.functional.quantize_4bit``), logical shape and dtype, read by every torch op
as its dequantized value (below autograd), so peft's ``target_parameters`` LoRA composes with it.
Frozen: in-place writes raise. With LoRA on the experts, turn on ``train.gradient_checkpointing`` on
big models (each MoE layer saves its dense folded weight for backward).
Not supported: ``torch.compile`` and FSDP/DTensor sharding of these weights (no
``__tensor_flatten__``); saving the full model (QLoRA saves the adapter only).

Why, how, and the memory trade-off in figures: docs/qlora.md
"""

from __future__ import annotations

import torch
from torch.utils._pytree import tree_map

EXPERT_NAMES = ("gate_up_proj", "down_proj")
BLOCKSIZE = 64  # bitsandbytes' default 4-bit block size (bnb.nn.Linear4bit / Params4bit)

_aten = torch.ops.aten
_VIEWS = (_aten.detach.default, _aten.alias.default)


class NF4ExpertWeight(torch.Tensor):
    """A frozen tensor stored as bitsandbytes 4-bit data; reads as its dequantized value."""

    @staticmethod
    def __new__(cls, packed, quant_state, dtype):
        return torch.Tensor._make_wrapper_subclass(
            cls, tuple(quant_state.shape), dtype=dtype, device=packed.device, requires_grad=False
        )

    def __init__(self, packed, quant_state, dtype):
        self.packed = packed
        self.quant_state = quant_state

    @classmethod
    def quantize(cls, weight: torch.Tensor, quant_type: str = "nf4", double_quant: bool = True) -> "NF4ExpertWeight":
        """The 4-bit form of ``weight`` (any shape; reads back in ``weight.dtype``)."""
        import bitsandbytes.functional as bnbf

        packed, state = bnbf.quantize_4bit(
            weight.detach(), blocksize=BLOCKSIZE, compress_statistics=double_quant, quant_type=quant_type
        )
        return cls(packed, state, weight.dtype)

    def dequantize(self) -> torch.Tensor:
        """The dense value (a plain tensor of this shape and dtype)."""
        import bitsandbytes.functional as bnbf

        return bnbf.dequantize_4bit(self.packed, self.quant_state).to(self.dtype)

    def storage_bytes(self) -> int:
        """Bytes actually held: packed data plus quantization constants (nested ones included)."""
        state = self.quant_state
        total = self.packed.numel() * self.packed.element_size() + state.absmax.numel() * state.absmax.element_size()
        total += state.code.numel() * state.code.element_size()
        if state.nested:
            inner = state.state2
            total += inner.absmax.numel() * inner.absmax.element_size() + inner.code.numel() * inner.code.element_size()
        return total

    def __repr__(self):
        return f"NF4ExpertWeight(shape={tuple(self.shape)}, dtype={self.dtype}, {self.quant_state.quant_type}, {self.storage_bytes()} bytes)"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _VIEWS:
            self = args[0]
            return cls(self.packed, self.quant_state, self.dtype)
        if func is _aten._to_copy.default:
            return args[0]._moved(**kwargs)
        if func is _aten.set_.source_Tensor and args[1] is args[0]:
            return args[0]  # torch.nn.utils.parametrize "sets" a parameter to itself when registering
        if func._schema.is_mutable and isinstance(args[0], NF4ExpertWeight):
            raise RuntimeError(f"{func} would write into a frozen 4-bit expert weight (QLoRA trains adapters only)")

        def dense(value):
            return value.dequantize() if isinstance(value, NF4ExpertWeight) else value

        return func(*tree_map(dense, args), **tree_map(dense, kwargs))

    def _moved(self, dtype=None, device=None, **_ignored) -> "NF4ExpertWeight":
        state = self.quant_state
        if device is not None and torch.device(device) != self.packed.device:
            state = _state_to(state, torch.device(device))
            packed = self.packed.to(device)
        else:
            packed = self.packed
        return NF4ExpertWeight(packed, state, dtype or self.dtype)


def _state_to(state, device):
    import copy

    moved = copy.copy(state)
    moved.to(device)  # QuantState.to moves absmax, code and the nested state in place
    return moved


def quantize_experts(model, quant_type: str = "nf4", double_quant: bool = True) -> int:
    """Replace every fused expert weight (``*.experts.gate_up_proj`` / ``down_proj``, 3D) of ``model``
    by its 4-bit form, freeing the dense one; returns how many were replaced (0 on a dense model)."""
    replaced = 0
    for name, module in model.named_modules():
        if not name.endswith("experts"):
            continue
        for attribute in EXPERT_NAMES:
            weight = module._parameters.get(attribute)
            if weight is None or weight.dim() != 3 or isinstance(weight, NF4ExpertWeight):
                continue
            quantized = NF4ExpertWeight.quantize(weight.data, quant_type, double_quant)
            module._parameters[attribute] = torch.nn.Parameter(quantized, requires_grad=False)
            replaced += 1
    return replaced


def expert_weights(model) -> dict[str, NF4ExpertWeight]:
    """The 4-bit expert weights of ``model`` by parameter name (empty when none is quantized)."""
    return {name: p for name, p in model.named_parameters() if isinstance(p, NF4ExpertWeight)}
