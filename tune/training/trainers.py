"""The trainer classes tune runs: TRL's own and transformers' own, plus tune's preemption stop, schedules,
numerical guard, resume fix and MoE router losses.

    SftTrainer     trl.SFTTrainer + the mixins below
    DpoTrainer     tune.training.dpo_trainer.PretokenizedDPOTrainer (TRL's DPOTrainer taking tune's
                   pre-tokenized pairs) + the mixins below but RouterLossMixin (`tune validate` refuses a
                   z-loss on a dpo recipe)
    CptTrainer     transformers.Trainer (the model's own causal-LM loss) + the mixins below; it takes the
                   MoE aux loss out of the model's loss and weighs it as TRL does (tune.training.router_losses)
    CorpusTrainer  CptTrainer reading pre-tokenized corpus windows in order, with eval perplexity
                   (tune.training.corpus_trainer; method cpt)

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
    WsdScheduleMixin      tune.training.wsd_schedule: `train.scheduler: wsd`, Megatron's WSD
    RouterLossMixin       tune.training.router_losses: `model.router_z_loss_coef` (SftTrainer, CptTrainer)

They take ``min_lr_hold_steps`` (and SftTrainer / CptTrainer ``router_z_loss_coef``) besides the parent's own
arguments; with 0, a fresh run trains exactly as with TRL's classes as long as every number stays finite and no
preemption signal arrives.
"""

from __future__ import annotations

from transformers import Trainer
from trl import SFTTrainer

from tune.training.adapter_dtype import AdapterDtypeMixin
from tune.training.corpus_trainer import CorpusOrderMixin, PerplexityLogMixin
from tune.training.dpo_trainer import PretokenizedDPOTrainer
from tune.training.nan_guard import NonFiniteGuardMixin
from tune.training.preemption import PreemptionMixin
from tune.training.router_losses import RouterLossMixin
from tune.training.schedule import MinLrHoldMixin
from tune.training.wsd_schedule import WsdScheduleMixin


class SftTrainer(PreemptionMixin, NonFiniteGuardMixin, AdapterDtypeMixin, MinLrHoldMixin, WsdScheduleMixin,
                 RouterLossMixin, SFTTrainer):
    """TRL's SFTTrainer with preemption-safe stops, the numerical guard, the adapter-dtype resume fix,
    `train.min_lr_hold_steps`, `train.scheduler: wsd` and the router z-loss."""


class DpoTrainer(PreemptionMixin, NonFiniteGuardMixin, AdapterDtypeMixin, MinLrHoldMixin, WsdScheduleMixin,
                 PretokenizedDPOTrainer):
    """TRL's DPOTrainer on pre-tokenized pairs (tune.training.dpo_trainer) with preemption-safe stops, the numerical guard,
    the adapter-dtype resume fix, `train.min_lr_hold_steps` and `train.scheduler: wsd`."""


class CptTrainer(PreemptionMixin, NonFiniteGuardMixin, AdapterDtypeMixin, MinLrHoldMixin, WsdScheduleMixin,
                 RouterLossMixin, Trainer):
    """transformers' Trainer with the mixins above; on an MoE model the aux loss is weighed per micro batch as TRL
    weighs it and logged as `aux_loss`, the z-loss as `z_loss` (tune.training.router_losses)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, own_aux_loss=True, **kwargs)


class CorpusTrainer(CorpusOrderMixin, PerplexityLogMixin, CptTrainer):
    """CptTrainer reading corpus windows in the dataset's order, logging eval perplexity (tune.training.corpus_trainer)."""
