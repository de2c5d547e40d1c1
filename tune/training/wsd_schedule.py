"""`train.scheduler: wsd`: warmup, a stable phase and a decay phase, equal at every step to Megatron's WSD.

LLM-jp pre-trains and continues pre-training with Megatron-LM's ``--lr-decay-style WSD``
(megatron/core/optimizer_param_scheduler.py, ``OptimizerParamScheduler.get_lr``; read at NVIDIA/Megatron-LM
d98e8a6). Over T optimizer steps with warmup W and a decay of the last D steps, the lr of optimizer step n
(n from 0: Megatron reads the lr of an iteration before it steps, with ``num_steps`` = the samples of the
iterations done, i.e. n x global batch against the warmup and decay lengths also counted in samples) is

    W > 0 and n <= W     lr = max x n / W                      (from 0: Megatron's `--lr-warmup-init` 0)
    n <= T - D           lr = max                              (the stable phase)
    T - D < n <= T       lr = min + c(x) x (max - min),  x = (n - (T - D)) / D
                             minus_sqrt  c = 1 - sqrt(x)
                             linear      c = 1 - x
                             cosine      c = (1 + cos(pi x)) / 2
    n > T                lr = min

(``--lr-wsd-decay-style`` also offers `exponential`; LLM-jp does not use it and the schema does not offer it.)
The run's last optimizer step is n = T - 1, so the floor itself is reached only after the run.

transformers' own ``warmup_stable_decay`` (``get_wsd_schedule``, decay types 1-sqrt / linear / cosine) agrees
with this after the warmup for every style and every ``min_lr_ratio``, but its warmup starts at
``min_lr_ratio`` x max instead of 0: with ``train.min_lr`` > 0 the first W steps differ from Megatron's. So
tune builds the schedule itself, the way tune.training.schedule builds the cosine hold: a ``LambdaLR`` in
``create_scheduler``, the method transformers' Trainer documents for subclasses to override, reading the floor
as ``min_lr_rate`` (min_lr / lr) from ``lr_scheduler_kwargs`` so it never reads ``optimizer.defaults`` (which
DeepSpeed ZeRO-3's optimizer lacks). tests/training/test_wsd_schedule.py checks a real trainer's lr against the
closed form above at the steps where the phases meet.

tune.training.arguments hands the recipe's values over as ``lr_scheduler_type="warmup_stable_decay"`` with
``lr_scheduler_kwargs`` ``{"decay_style", "min_lr_rate", "decay_steps" | "decay_fraction"}``; the decay's
length in steps is settled here, once the run's optimizer steps are known: ``decay_fraction`` x T rounded
down, at least 1. A decay longer than the steps after warmup is refused (UserError naming the keys).
"""

from __future__ import annotations

import math
from functools import partial

from tune.errors import UserError

WSD_SCHEDULER = "warmup_stable_decay"  # transformers' SchedulerType the arguments name (module docstring)

_DECAY = {
    "minus_sqrt": lambda x: 1.0 - math.sqrt(x),
    "linear": lambda x: 1.0 - x,
    "cosine": lambda x: 0.5 * (math.cos(math.pi * x) + 1.0),
}


def wsd_factor(step: int, *, warmup: int, total: int, decay: int, style: str, min_lr_rate: float) -> float:
    """The multiplier of the peak lr at optimizer ``step`` (module docstring: Megatron's closed form, with
    ``min_lr_rate`` = min_lr / lr)."""
    if warmup > 0 and step <= warmup:
        return step / warmup
    if step > total:
        return min_lr_rate
    start = total - decay
    if step <= start:
        return 1.0
    coeff = _DECAY[style]((step - start) / decay)
    return min_lr_rate + coeff * (1.0 - min_lr_rate)


def decay_length(total: int, warmup: int, spec: dict) -> int:
    """The decay phase's optimizer steps for a run of ``total`` steps: ``spec["decay_steps"]``, or
    ``spec["decay_fraction"]`` x total rounded down and at least 1. Refuses (UserError naming the keys) a decay
    longer than the steps left after the warmup."""
    if spec.get("decay_steps") is not None:
        decay, given = int(spec["decay_steps"]), f"train.decay_steps: {spec['decay_steps']}"
    else:
        fraction = spec["decay_fraction"]
        decay = max(1, math.floor(fraction * total))
        given = f"train.decay_fraction: {fraction:g} ({decay} steps)"
    if decay > total - warmup:
        raise UserError(
            f"{given} is longer than the run's steps after warmup: the run has {total} optimizer steps and "
            f"train.warmup_steps: {warmup}, which leaves {max(0, total - warmup)} for the stable and decay phases; "
            f"lower train.decay_steps / train.decay_fraction or train.warmup_steps, or train longer"
        )
    return decay


class WsdScheduleMixin:
    """A Trainer mixin: with `train.scheduler: wsd` (``lr_scheduler_type`` ``warmup_stable_decay`` and tune's
    ``decay_style`` in ``lr_scheduler_kwargs``), the scheduler is Megatron's WSD (module docstring); any other
    schedule is left to the classes after it."""

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        spec = self.args.lr_scheduler_kwargs or {}
        if self.lr_scheduler is not None or self.args.lr_scheduler_type != WSD_SCHEDULER or "decay_style" not in spec:
            return super().create_scheduler(num_training_steps, optimizer)
        from torch.optim.lr_scheduler import LambdaLR

        warmup = self.args.get_warmup_steps(num_training_steps)
        factor = partial(wsd_factor, warmup=warmup, total=num_training_steps,
                         decay=decay_length(num_training_steps, warmup, spec), style=spec["decay_style"],
                         min_lr_rate=spec["min_lr_rate"])
        self.lr_scheduler = LambdaLR(optimizer or self.optimizer, factor)
        self._created_lr_scheduler = True
        return self.lr_scheduler
