"""The trainer classes tune runs: TRL's own, plus tune's preemption stop, schedule, numerical guard and resume fix.

    SftTrainer   trl.SFTTrainer + the mixins below
    DpoTrainer   tune.training.dpo_trainer.PretokenizedDPOTrainer (TRL's DPOTrainer taking tune's
                 pre-tokenized pairs) + the mixins below

The mixins, which every method's trainer gets:
    PreemptionMixin       tune.training.preemption: a preemption signal (`launch.preempt_signals`)
                          is deferred to the next step boundary, agreed across ranks; the job saves
                          one complete checkpoint at that step and ``train()`` raises Preempted
    NonFiniteGuardMixin   tune.training.nan_guard: a non-finite loss, gradient norm or weight stops
                          the run (a UserError naming the step and the likely knobs) before anything
                          of that step is saved; under fp16 a gradient overflow is a skipped step
    AdapterDtypeMixin     tune.training.adapter_dtype: a resumed run trains its adapters in the dtype
                          the trainer built them in (QLoRA's bf16 adapters), so QLoRA resumes exactly
    MinLrHoldMixin        tune.training.schedule: `train.min_lr_hold_steps`

Both take ``min_lr_hold_steps`` besides TRL's own arguments; with 0, a fresh run trains exactly as
with TRL's classes as long as every number stays finite and no preemption signal arrives.
"""

from __future__ import annotations

from trl import SFTTrainer

from tune.training.adapter_dtype import AdapterDtypeMixin
from tune.training.dpo_trainer import PretokenizedDPOTrainer
from tune.training.nan_guard import NonFiniteGuardMixin
from tune.training.preemption import PreemptionMixin
from tune.training.schedule import MinLrHoldMixin


class SftTrainer(PreemptionMixin, NonFiniteGuardMixin, AdapterDtypeMixin, MinLrHoldMixin, SFTTrainer):
    """TRL's SFTTrainer with preemption-safe stops, the numerical guard, the adapter-dtype resume fix and
    `train.min_lr_hold_steps`."""


class DpoTrainer(PreemptionMixin, NonFiniteGuardMixin, AdapterDtypeMixin, MinLrHoldMixin, PretokenizedDPOTrainer):
    """TRL's DPOTrainer on pre-tokenized pairs (tune.training.dpo_trainer) with preemption-safe stops, the numerical guard,
    the adapter-dtype resume fix and `train.min_lr_hold_steps`."""
