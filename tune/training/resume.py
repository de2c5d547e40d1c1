"""Continue an interrupted run from its latest complete checkpoint, experts included.

A run killed mid-way (preemption on ABCI, a crash) leaves `output.dir/checkpoints/checkpoint-N`
folders and no manifest. `tune run` on the same recipe finds the latest complete one and hands it
to `Trainer.train(resume_from_checkpoint=...)`, which restores optimizer, scheduler, RNG and data
position (tune.training.continuation; whether the recipe may continue it: tune.training.resume_check).

A checkpoint counts only when complete: transformers writes `checkpoint-N` in place, file by file,
so a process killed while saving leaves a folder that looks like a checkpoint (even a
`trainer_state.json` cut half-way). Once every file is written (by every process: the marker is
written by the main process after they all saved, tune.training.checkpoint_guard), tune writes
``COMPLETE`` (`tune-complete.json`) into the folder last, atomically, listing each file with its
size; a folder without it, or whose files no longer have those sizes, is incomplete: never resumed
from, and removed when the run continues (``incomplete_checkpoints``). The checkpoint a preemption
signal saves (tune.training.preemption) is one of these, at the step every rank agreed on: a
``kill -9`` during its save leaves the previous complete checkpoint chosen.

Why the model weights are loaded from the checkpoint first (a workaround, pinned by
tests/methods/test_resume.py): for full fine-tuning, Trainer reloads a checkpoint with a plain
`load_state_dict(strict=False)`. Qwen3-MoE checkpoints are saved in the hub's per-expert layout
while the model holds fused expert tensors, so the experts are silently not restored (only a
"missing keys" warning; transformers issue 48805). Loading the model with `from_pretrained` from
the checkpoint folder goes through the conversion mapping and restores them; Trainer's own reload
then changes nothing. LoRA runs keep loading the base: the checkpoint holds only the adapter.

Standard library only (``tune run`` reads checkpoints before torch is imported).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

_CHECKPOINT = re.compile(r"checkpoint-(\d+)$")
COMPLETE = "tune-complete.json"
STATE = "trainer_state.json"


def checkpoint_folders(run_dir: Path) -> list[Path]:
    """Every `checkpoints/checkpoint-N` folder of ``run_dir``, complete or not, by step."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _CHECKPOINT.search(p.name) and p.is_dir()]
    return sorted(found, key=checkpoint_step)


def checkpoint_step(checkpoint: Path) -> int:
    """The optimizer step a `checkpoint-N` folder was saved at (its N)."""
    return int(_CHECKPOINT.search(Path(checkpoint).name).group(1))


def is_complete(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` holds its completion marker and every file the marker lists, at its size."""
    checkpoint = Path(checkpoint)
    try:
        record = json.loads((checkpoint / COMPLETE).read_text(encoding="utf-8"))
        files = record["files"]
        if record.get("step") != checkpoint_step(checkpoint) or STATE not in files:
            return False
        return all((checkpoint / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The highest-step complete `checkpoints/checkpoint-N` of ``run_dir`` (None when there is none)."""
    complete = [p for p in checkpoint_folders(run_dir) if is_complete(p)]
    return complete[-1] if complete else None


def incomplete_checkpoints(run_dir: Path) -> list[Path]:
    """The `checkpoint-N` folders of ``run_dir`` that are not complete (a save cut short), by step."""
    return [p for p in checkpoint_folders(run_dir) if not is_complete(p)]


def mark_complete(checkpoint: Path) -> None:
    """Write ``checkpoint``'s completion marker: every file under it with its size, written aside and
    renamed into place (call it once every process has finished saving the checkpoint)."""
    checkpoint = Path(checkpoint)
    files = {}
    for path in sorted(checkpoint.rglob("*")):
        if path.is_file() and path.name != COMPLETE and not path.name.startswith(f".{COMPLETE}"):
            files[path.relative_to(checkpoint).as_posix()] = path.stat().st_size
    record = {"step": checkpoint_step(checkpoint), "files": files}
    aside = checkpoint / f".{COMPLETE}.{os.getpid()}"
    aside.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(aside, checkpoint / COMPLETE)


def rotate(run_dir: Path, keep: int | None, newest: Path) -> list[Path]:
    """Delete the checkpoints of ``run_dir`` beyond the ``keep`` newest complete ones (``newest``, just
    marked, always stays), and any incomplete folder older than ``newest``; returns what was deleted."""
    folders = checkpoint_folders(run_dir)
    complete = [p for p in folders if is_complete(p)]
    doomed = [p for p in folders if p not in complete and checkpoint_step(p) < checkpoint_step(newest)]
    if keep:
        doomed += [p for p in complete[:-keep] if p.name != newest.name]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def whole_without_marker(checkpoint: Path) -> bool:
    """For a run folder of tune from before the completion marker: whether ``checkpoint``'s
    `trainer_state.json`, which transformers writes after the weights, optimizer, scheduler and RNG
    states of one process, is whole and names the checkpoint's own step."""
    try:
        return saved_state(checkpoint).get("global_step") == checkpoint_step(checkpoint)
    except (OSError, ValueError, AttributeError):
        return False


def saved_state(checkpoint: Path) -> dict:
    """The checkpoint's `trainer_state.json` (global_step, max_steps, log history, ...)."""
    return json.loads((Path(checkpoint) / STATE).read_text(encoding="utf-8"))


def weights_for_resume(checkpoint, resume_from: Path | None, recipe):
    """The checkpoint to load model weights from: the resume folder for full fine-tuning, else the base."""
    if resume_from is None or recipe.method.peft != "none":
        return checkpoint
    return replace(checkpoint, folder=resume_from)
