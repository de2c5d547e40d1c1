"""Continue an interrupted run from its latest checkpoint, experts included.

A run killed mid-way (preemption on ABCI, a crash) leaves `output.dir/checkpoints/checkpoint-N`
folders and no manifest. `tune run` on the same recipe finds the latest and hands it to
`Trainer.train(resume_from_checkpoint=...)`, which restores optimizer, scheduler, RNG and data
position.

Why the model weights are loaded from the checkpoint first (a workaround, pinned by
tests/methods/test_resume.py): for full fine-tuning, Trainer reloads a checkpoint with a plain
`load_state_dict(strict=False)`. Qwen3-MoE checkpoints are saved in the hub's per-expert layout
while the model holds fused expert tensors, so the experts are silently not restored (only a
"missing keys" warning; transformers issue 48805). Loading the model with `from_pretrained` from
the checkpoint folder goes through the conversion mapping and restores them; Trainer's own reload
then changes nothing. LoRA runs keep loading the base: the checkpoint holds only the adapter.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

_CHECKPOINT = re.compile(r"checkpoint-(\d+)$")


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The highest-step complete `checkpoints/checkpoint-N` of ``run_dir`` (None when there is none)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    complete = [p for p in folder.iterdir() if _CHECKPOINT.search(p.name) and (p / "trainer_state.json").exists()]
    return max(complete, key=lambda p: int(_CHECKPOINT.search(p.name).group(1)), default=None)


def weights_for_resume(checkpoint, resume_from: Path | None, recipe):
    """The checkpoint to load model weights from: the resume folder for full fine-tuning, else the base."""
    if resume_from is None or recipe.method.peft != "none":
        return checkpoint
    return replace(checkpoint, folder=resume_from)
