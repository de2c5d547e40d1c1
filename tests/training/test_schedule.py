"""`train.min_lr_hold_steps`: NeMo's CosineAnnealing with constant_steps, and transformers' own schedule without a hold."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from tune.errors import UserError
from tune.training.schedule import MinLrHoldMixin, cosine_hold_factor


def nemo_lr(step, *, max_lr, min_lr, warmup_steps, constant_steps, max_steps):
    """NeMo v2.1.0rc0 CosineAnnealing.get_lr with constant_steps > 0 (nemo/core/optim/lr_scheduler.py:
    WarmupAnnealHoldPolicy.get_lr -> CosineAnnealing._get_linear_warmup_with_cosine_annealing_lr ->
    _linear_warmup_with_cosine_annealing), transcribed as the reference."""
    decay_steps = max_steps - (constant_steps + warmup_steps)
    if warmup_steps > 0 and step <= warmup_steps:
        return max_lr * float(step) / float(warmup_steps)
    if step > warmup_steps + decay_steps:
        return min_lr
    decay_ratio = float(step - warmup_steps) / float(decay_steps)
    return min_lr + 0.5 * (math.cos(math.pi * decay_ratio) + 1.0) * (max_lr - min_lr)


@pytest.mark.parametrize("warmup, hold, total", [(20, 100, 500), (0, 10, 50), (5, 1, 30)])
def test_the_factor_is_nemos_cosine_annealing_with_constant_steps(warmup, hold, total):
    for step in range(total + 1):
        ours = 2e-5 * cosine_hold_factor(step, warmup=warmup, total=total, hold=hold, min_lr_rate=0.1)
        assert ours == pytest.approx(nemo_lr(step, max_lr=2e-5, min_lr=2e-6, warmup_steps=warmup,
                                             constant_steps=hold, max_steps=total), rel=1e-12, abs=1e-18), step


class _BaseTrainer:
    """Stands in for transformers' Trainer: records that its own scheduler was asked for."""

    def __init__(self, args, optimizer):
        self.args, self.optimizer, self.lr_scheduler = args, optimizer, None

    def create_scheduler(self, num_training_steps, optimizer=None):
        from transformers import get_scheduler

        self.lr_scheduler = get_scheduler(self.args.lr_scheduler_type, optimizer or self.optimizer,
                                          num_warmup_steps=self.args.warmup_steps, num_training_steps=num_training_steps,
                                          scheduler_specific_kwargs=self.args.lr_scheduler_kwargs)
        return self.lr_scheduler


class Trainer(MinLrHoldMixin, _BaseTrainer):
    pass


def lrs(trainer, steps):
    scheduler = trainer.create_scheduler(steps)
    values = []
    for _ in range(steps):
        values.append(scheduler.get_last_lr()[0])
        trainer.optimizer.step()
        scheduler.step()
    return values


def make(hold):
    args = SimpleNamespace(learning_rate=2e-5, lr_scheduler_type="cosine_with_min_lr", warmup_steps=20,
                           lr_scheduler_kwargs={"min_lr": 2e-6}, get_warmup_steps=lambda steps: 20)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-5)
    return Trainer(args, optimizer, min_lr_hold_steps=hold)


def test_a_hold_gives_nemos_values_at_every_optimizer_step():
    values = lrs(make(100), 500)
    expected = [nemo_lr(step, max_lr=2e-5, min_lr=2e-6, warmup_steps=20, constant_steps=100, max_steps=500)
                for step in range(500)]
    assert values == pytest.approx(expected, rel=1e-9, abs=1e-18)
    assert values[0] == 0.0 and values[20] == pytest.approx(2e-5) and values[400:] == pytest.approx([2e-6] * 100)


def test_no_hold_is_transformers_own_schedule():
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-5)
    reference = get_cosine_with_min_lr_schedule_with_warmup(optimizer, 20, 500, min_lr=2e-6)
    expected = []
    for _ in range(500):
        expected.append(reference.get_last_lr()[0])
        optimizer.step()
        reference.step()
    assert lrs(make(0), 500) == expected


def test_a_hold_that_leaves_no_decay_is_refused_with_the_key():
    with pytest.raises(UserError, match="train.min_lr_hold_steps: 480 leaves no step for the cosine decay"):
        make(480).create_scheduler(500)


def test_a_hold_needs_the_cosine_schedule(write_recipe, recipe_error):
    text = recipe_error(write_recipe("model: {name: tiny-llm-jp-4-8b}\ndata: {datasets: [{path: tune:samples/demo-chat.jsonl}]}\n"
                                     "train: {scheduler: linear, min_lr_hold_steps: 10}\n"))
    assert "`train.min_lr_hold_steps` holds the cosine's minimum" in text
