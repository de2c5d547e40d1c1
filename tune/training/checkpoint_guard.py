"""A trainer callback that makes checkpoints trustworthy: completion marker, rotation after it, lease check.

    completion   after transformers has saved `checkpoint-N` (``on_save``), once every process has
                 saved its part (a barrier; nothing to wait for with one process), the main process
                 writes the checkpoint's completion marker (tune.training.resume.mark_complete). A
                 folder without it is never resumed from.
    rotation     `output.save_total_limit` is applied here, after the marker, instead of by
                 transformers (``take_over_rotation`` turns the trainer's own off): transformers
                 deletes old checkpoints *before* the new one is marked, so a kill in between could
                 leave no complete checkpoint at all (with a limit of 1). Here the newest
                 ``keep`` complete checkpoints stay, and an incomplete folder is never counted.
    lease        a run whose lease on `output.dir` was taken over by another (tune.training.folder_lease:
                 its heartbeat stalled past the limit, and a run elsewhere took the folder) stops at
                 the next step end with a UserError, so two runs never keep writing into one folder.
                 Only the main rank holds the lease; the ranks agree at every step end
                 (tune.training.distributed.any_rank, one small all-reduce), so every rank stops at
                 the same step and none is left waiting in a collective.

With several processes every one calls ``on_save`` after transformers' own save (each has written
its shards by then), so the barrier is the point where the checkpoint is whole; only the main
process (global rank 0) writes the marker and rotates, as only it holds the lease.
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from tune.errors import UserError
from tune.training.resume import mark_complete, rotate
from tune.training.folder_lease import held_lease


class LeaseLost(UserError):
    """Another run took the lease on this run's folder; this run stopped."""


def take_over_rotation(args) -> int:
    """Turn transformers' own checkpoint rotation off on the trainer arguments ``args`` (CheckpointGuard
    rotates after marking instead); returns the limit it had (`output.save_total_limit`)."""
    keep = args.save_total_limit
    args.save_total_limit = None
    return keep


class CheckpointGuard(TrainerCallback):
    """The callback of the module docstring for the run writing into ``run_dir``, keeping ``keep``
    complete checkpoints."""

    def __init__(self, run_dir: Path, keep: int | None, printer=print) -> None:
        self.run_dir = Path(run_dir)
        self.keep = keep
        self.printer = printer

    def on_save(self, args, state, control, **kwargs):
        from accelerate import PartialState

        PartialState().wait_for_everyone()  # every process has written its part of the checkpoint
        if state.is_world_process_zero:
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if checkpoint.is_dir():
                mark_complete(checkpoint)
                rotate(self.run_dir, self.keep, newest=checkpoint)
        PartialState().wait_for_everyone()

    def on_step_end(self, args, state, control, **kwargs):
        from tune.training.distributed import any_rank

        lease = held_lease(self.run_dir)
        if any_rank(lease is not None and lease.lost):
            lost_to = lease.lost_to if lease is not None else "another run (the main rank's lease)"
            raise LeaseLost(f"stopped at step {state.global_step}: the lease on {self.run_dir} was taken over by "
                            f"{lost_to} (this run's heartbeat had stalled); this run writes nothing more there")

