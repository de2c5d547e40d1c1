"""Patch: a resumed run trains its adapters in the dtype the trainer built them in (QLoRA resumes exactly).

Why this file exists (a workaround, pinned by tests/methods/test_qlora_resume.py): for a quantized
base (QLoRA), TRL 1.16's SFTTrainer and DPOTrainer cast the LoRA weights to bf16 when they are built
(the QLoRA paper's recommendation; DoRA's magnitude stays fp32). Trainer reloads an adapter
checkpoint with peft's ``PeftModel.load_adapter``, which ends with ``_cast_adapter_dtype`` under its
default ``autocast_adapter_dtype=True``: every bf16 / fp16 adapter weight becomes fp32 (peft 0.21.2).
So a resumed QLoRA run continued in fp32 while the uninterrupted run trained in bf16: losses 1.3e-3
apart after the resume, adapter weights 9e-4 apart, and ``final/`` written in fp32 instead of bf16.
Full, LoRA and MoE runs were exact only because their adapters are fp32 from the start.

``AdapterDtypeMixin`` records the dtype of every trainable parameter once the trainer is built and,
in ``create_optimizer`` (the documented Trainer method, called after the checkpoint's weights are
loaded and before its optimizer state is), casts back any whose dtype changed. The values survive
unchanged: the checkpoint holds the bf16 values, fp32 holds each exactly, and the optimizer state
(saved in bf16) is then loaded into bf16 parameters as it was saved. A fresh run changes nothing.
"""

from __future__ import annotations


class AdapterDtypeMixin:
    """A Trainer mixin: trainable parameters keep the dtype they had when the trainer was built."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.built_dtypes = trainable_dtypes(self.model)

    def create_optimizer(self, *args, **kwargs):
        restore_dtypes(self.model, self.built_dtypes)
        return super().create_optimizer(*args, **kwargs)


def trainable_dtypes(model) -> dict:
    """``{name: dtype}`` of every parameter of ``model`` that requires a gradient."""
    return {name: p.dtype for name, p in model.named_parameters() if p.requires_grad}


def restore_dtypes(model, dtypes: dict) -> list[str]:
    """Cast back each parameter of ``model`` named in ``dtypes`` whose dtype changed (in place, the
    same Parameter object); returns the names cast."""
    cast = []
    for name, p in model.named_parameters():
        wanted = dtypes.get(name)
        if wanted is not None and p.dtype != wanted:
            p.data = p.data.to(wanted)
            cast.append(name)
    return cast
