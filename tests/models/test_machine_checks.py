"""What the training machine must offer, checked at run start (tune.models.machine_checks), and listed
as deferred by `tune validate`. This machine has no CUDA GPU; a GPU is simulated where one is needed."""

from __future__ import annotations

import pytest
import torch

from tune.errors import UserError
from tune.models import machine_checks
from tune.models.machine_checks import check_machine, deferred_checks, resolve_precision
from tune.recipe import load_recipe


def recipe(*overrides):
    return load_recipe("tiny/sft-lora", list(overrides)).recipe


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


@pytest.fixture
def old_gpu(monkeypatch):
    """A CUDA GPU without bf16 (pre-Ampere) and without the flash_attn package."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    real = machine_checks.importlib.util.find_spec
    monkeypatch.setattr(machine_checks.importlib.util, "find_spec", lambda name, *a: None if name == "flash_attn" else real(name, *a))


def test_a_cpu_machine_refuses_everything_it_cannot_run_in_one_message(no_gpu):
    with pytest.raises(UserError) as info:
        check_machine(recipe("model.attn_implementation=flash_attention_2", "train.precision=fp16", "model.liger=true"))
    lines = str(info.value).splitlines()
    assert lines[0] == "this machine cannot run the recipe as written:"
    assert [line.strip().split(":")[0] for line in lines[1:]] == ["model.attn_implementation", "train.precision", "model.liger"]
    assert "flash_attention_2 needs a CUDA GPU and this machine has none; use sdpa" in lines[1]
    assert "fp16 needs a CUDA GPU" in lines[2] and "need a CUDA GPU" in lines[3]


def test_a_cpu_machine_runs_the_defaults_in_fp32(no_gpu):
    check_machine(recipe())
    check_machine(recipe("train.precision=bf16", "model.attn_implementation=eager"))  # CPU autocast has bf16
    assert resolve_precision(recipe()) == "fp32"


def test_a_gpu_without_bf16_or_flash_attn_is_refused(old_gpu):
    with pytest.raises(UserError) as info:
        check_machine(recipe("model.attn_implementation=flash_attention_2", "train.precision=bf16"))
    message = str(info.value)
    assert "model.attn_implementation: flash_attention_2 needs the flash_attn package, which is not installed" in message
    assert "train.precision: bf16 is not supported by this GPU" in message
    assert resolve_precision(recipe()) == "fp32" and resolve_precision(recipe("train.precision=fp16")) == "fp16"


def test_the_trainer_arguments_ask_the_same_rule(no_gpu):
    from tune.training.arguments import resolve_precision as arguments_precision

    with pytest.raises(UserError, match="train.precision: fp16 needs a CUDA GPU"):
        arguments_precision(recipe("train.precision=fp16"))


def test_validate_lists_what_it_defers_to_the_training_machine():
    assert deferred_checks(recipe("model.attn_implementation=flash_attention_2", "model.liger=true")) == [
        "model.attn_implementation flash_attention_2 (needs a CUDA GPU and the flash_attn package)",
        "train.precision auto (bf16 on a CUDA GPU that supports it, else fp32)",
        "model.liger (needs a CUDA GPU)",
    ]
    assert deferred_checks(recipe("train.precision=fp32")) == []
