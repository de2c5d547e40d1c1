"""The trainer classes tune runs: TRL's own, plus tune's cosine schedule with a held minimum.

    SftTrainer   trl.SFTTrainer + tune.training.schedule.MinLrHoldMixin
    DpoTrainer   tune.training.dpo_trainer.PretokenizedDPOTrainer (TRL's DPOTrainer taking tune's
                 pre-tokenized pairs) + MinLrHoldMixin

Both take ``min_lr_hold_steps`` (`train.min_lr_hold_steps`) besides TRL's own arguments; with 0 they
behave exactly as TRL's classes.
"""

from __future__ import annotations

from trl import SFTTrainer

from tune.training.dpo_trainer import PretokenizedDPOTrainer
from tune.training.schedule import MinLrHoldMixin


class SftTrainer(MinLrHoldMixin, SFTTrainer):
    """TRL's SFTTrainer with `train.min_lr_hold_steps` (tune.training.schedule)."""


class DpoTrainer(MinLrHoldMixin, PretokenizedDPOTrainer):
    """TRL's DPOTrainer on pre-tokenized pairs (tune.training.dpo_trainer) with `train.min_lr_hold_steps`."""
