"""The cosine schedule with a held minimum (`train.min_lr_hold_steps`): NeMo's CosineAnnealing with `constant_steps`.

LLM-jp tunes with NeMo's ``CosineAnnealing`` (nemo/core/optim/lr_scheduler.py, v2.1.0rc0, as ft-llm-2026
installs it) with ``warmup_steps``, ``constant_steps`` and ``min_lr``. With constant_steps > 0 it
follows ``_linear_warmup_with_cosine_annealing``: over T optimizer steps, warmup W, hold H,

    step <= W             lr = max_lr x step / W                      (0 at the first step)
    W < step <= T - H     lr = min_lr + (max_lr - min_lr) x (1 + cos(pi x (step - W) / (T - H - W))) / 2
    step > T - H          lr = min_lr

which is transformers' ``cosine_with_min_lr`` over T - H steps, then flat. transformers has no such
schedule, so tune's trainers (tune.methods) build it in ``create_scheduler``, the method transformers'
Trainer documents for subclasses to override; with no hold they leave it to transformers.
tests/training/test_schedule.py checks the values against NeMo's formula and that a hold of 0 gives
transformers' own schedule.

The floor arrives as ``lr_scheduler_kwargs["min_lr_rate"]`` (min_lr / lr, tune.training.arguments; a bare
``min_lr`` is still read), so the schedule never reads ``optimizer.defaults``, which DeepSpeed ZeRO-3's
optimizer lacks; it only needs the optimizer's ``param_groups`` (tests/training/test_strategy.py, and the
ZeRO-3 topology runs of tests/distributed/test_topology.py, which hold the minimum).
"""

from __future__ import annotations

import math
from functools import partial

from tune.errors import UserError


def cosine_hold_factor(step: int, *, warmup: int, total: int, hold: int, min_lr_rate: float) -> float:
    """The multiplier of the peak lr at optimizer ``step`` (module docstring; ``min_lr_rate`` = min_lr / lr)."""
    if step < warmup:
        return step / max(1, warmup)
    decay_end = total - hold
    if step >= decay_end:
        return min_lr_rate
    progress = (step - warmup) / max(1, decay_end - warmup)
    return min_lr_rate + (1 - min_lr_rate) * 0.5 * (1 + math.cos(math.pi * progress))


class MinLrHoldMixin:
    """A Trainer mixin: with ``min_lr_hold_steps`` > 0, the scheduler is the cosine with a held minimum."""

    def __init__(self, *args, min_lr_hold_steps: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.min_lr_hold_steps = min_lr_hold_steps

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if not self.min_lr_hold_steps or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        from torch.optim.lr_scheduler import LambdaLR

        warmup = self.args.get_warmup_steps(num_training_steps)
        if num_training_steps - self.min_lr_hold_steps <= warmup:
            raise UserError(
                f"train.min_lr_hold_steps: {self.min_lr_hold_steps} leaves no step for the cosine decay: the run has "
                f"{num_training_steps} optimizer steps and {warmup} warmup steps; lower it"
            )
        floor = self.args.lr_scheduler_kwargs
        min_lr_rate = floor["min_lr_rate"] if "min_lr_rate" in floor else floor["min_lr"] / self.args.learning_rate
        factor = partial(cosine_hold_factor, warmup=warmup, total=num_training_steps, hold=self.min_lr_hold_steps,
                         min_lr_rate=min_lr_rate)
        self.lr_scheduler = LambdaLR(optimizer or self.optimizer, factor)
        self._created_lr_scheduler = True
        return self.lr_scheduler
