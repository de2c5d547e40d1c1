"""The resume fix of tune.training.adapter_dtype, without training: peft's reload still casts bf16
adapters to fp32 (the pin: when it fails, upstream changed and the mixin may go), and the mixin
casts them back, values unchanged, before the optimizer is built.

The end-to-end check (a QLoRA run resumed equals an uninterrupted one, bit for bit) is
tests/methods/test_qlora_resume.py.
"""

from __future__ import annotations

import torch

from tune.training.adapter_dtype import AdapterDtypeMixin, restore_dtypes, trainable_dtypes


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)

    def forward(self, x):
        return self.lin(x)


def bf16_adapter():
    """A peft LoRA model whose adapters are bf16, as TRL leaves them on a quantized base."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(Tiny(), LoraConfig(target_modules=["lin"], r=2, init_lora_weights=False))
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.to(torch.bfloat16)
    return model


def test_peft_reload_still_casts_bf16_adapters_to_fp32(tmp_path):
    """What Trainer does on resume (``model.load_adapter(checkpoint, name, is_trainable=True)``)."""
    model = bf16_adapter()
    model.save_pretrained(tmp_path)
    model.load_adapter(str(tmp_path), "default", is_trainable=True)
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}


def test_restoring_gives_back_the_built_dtype_the_same_values_and_parameters(tmp_path):
    model = bf16_adapter()
    built = trainable_dtypes(model)
    saved = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    model.save_pretrained(tmp_path)
    model.load_adapter(str(tmp_path), "default", is_trainable=True)
    objects = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert sorted(restore_dtypes(model, built)) == sorted(built)
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p is objects[name] and p.dtype == torch.bfloat16 and torch.equal(p, saved[name])
    assert restore_dtypes(model, built) == []  # nothing left to cast


def test_the_optimizer_is_built_on_the_dtypes_the_trainer_was_built_with():
    seen = {}

    class StandInTrainer:
        def __init__(self, model):
            self.model = model

        def create_optimizer(self, model=None):
            seen.update({n: p.dtype for n, p in self.model.named_parameters() if p.requires_grad})
            return "optimizer"

    class Trainer(AdapterDtypeMixin, StandInTrainer):
        pass

    trainer = Trainer(bf16_adapter())
    for p in trainer.model.parameters():  # what peft's reload does to a resumed run's adapters
        if p.requires_grad:
            p.data = p.data.float()
    assert trainer.create_optimizer() == "optimizer"
    assert set(seen.values()) == {torch.bfloat16}


def test_every_trainer_tune_builds_keeps_its_adapter_dtypes():
    from tune.training.trainers import DpoTrainer, SftTrainer

    assert issubclass(SftTrainer, AdapterDtypeMixin) and issubclass(DpoTrainer, AdapterDtypeMixin)
