"""Preemption-safe stops: on a preemption signal every process finishes its step, the job saves one
complete checkpoint at the same step, and `tune run` exits 75 saying how to continue.

    signals      `launch.preempt_signals` (default SIGTERM and SIGUSR1: what PBS and SLURM send before
                 walltime or preemption; the job scripts of `tune launch` send SIGUSR1 a set time before
                 walltime). While the training loop runs, the handler only records the signal: the
                 process is never interrupted inside a step, a collective or a save.
    agreement    at every optimizer-step boundary (the trainer's ``on_step_end``) each process's flag
                 is OR-ed across the job (tune.training.distributed.any_rank, one small all-reduce),
                 so every rank sees the same answer at the same step, whichever rank (or node) got
                 the signal, and whenever it arrived during the step.
    checkpoint   when the job agrees, the step's checkpoint is saved by transformers' own
                 ``_save_checkpoint`` (weights or adapter, optimizer, scheduler, the RNG state of every
                 rank, the data position in ``trainer_state.json``; under FSDP2 / DeepSpeed by
                 accelerate's sharded savers) and training stops. It is atomic through the completion
                 marker of tune.training.checkpoint_guard: every rank writes its part into
                 `checkpoint-N`, a barrier, then the main rank renames ``tune-complete.json`` into place
                 (tune.training.resume.mark_complete). A folder without the marker (a ``kill -9``
                 during the save) is never chosen by tune.training.resume.latest_checkpoint: the
                 previous checkpoint is, and the torn folder is removed when the run continues.
    exit         ``trainer.train()`` then raises tune.errors.Preempted on every rank (the CLI exits with
                 its status 75), whose message names the signal, the step, the checkpoint and the
                 command that continues the run. The main rank also writes ``tune-preempted.json``
                 into the run folder (step, signal, checkpoint, command): a launcher that hides the
                 workers' exit status (torchrun exits 1 whenever a worker exits non-zero) lets the job
                 script tell "preempted" by that file; the next session removes it when it starts
                 training.

Outside the training loop (data preparation, model loading, before the first step), ``watch`` (used
by `tune run` around the method) turns a preemption signal into Preempted at once, with nothing new
to save: the run continues from its latest complete checkpoint. A signal agreed at the last step
saves that step's checkpoint and lets the run finish, as does one that arrives after it (``final/``
and the manifest take less time than training again; a run killed while writing them finishes from
that checkpoint without training: tune.training.continuation).

transformers' own ``TrainingArguments.enable_jit_checkpoint`` (5.24) was evaluated first and is not
used: it handles SIGTERM only; each rank sets its own flag from a 3-second timer after its own signal
and saves at its own next callback (``on_pre_optimizer_step`` included, i.e. between the backward
pass and the optimizer step), so ranks reach the save's collectives at different steps (a hang under
FSDP2 / DeepSpeed, checkpoints of different steps under DDP); ``train()`` then returns normally, so a
preempted run would write ``final/`` and a manifest as if it had finished; and its save bypasses the
``on_save`` event, so tune's completion marker would never be written. Making it agree would mean
replacing its handler, its flag, its save point and its exit: nothing of it would remain.
docs/preemption.md has the rationale and what a job script must do.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from transformers import TrainerCallback

from tune.errors import Preempted
from tune.training import distributed
from tune.training.nan_guard import NonFiniteGuard

DEFAULT_SIGNALS = ("SIGTERM", "SIGUSR1")
RECORD = "tune-preempted.json"
RECIPE_RECORD = "recipe.yaml"  # tune.methods.run_folder_plan.RECORD (training may not import methods)


class Watch:
    """The preemption signals of this process: which one arrived first (``received``), and whether a
    signal interrupts at once (``deferred`` False: outside the training loop) or waits for the next
    step boundary (``deferred`` True)."""

    def __init__(self, signals=DEFAULT_SIGNALS, continue_command: str | None = None) -> None:
        self.signals = tuple(signals)
        self.continue_command = continue_command
        self.received: str | None = None
        self.received_after: int | None = None  # the last step boundary passed when the signal came
        self.boundary: int | None = None  # set by PreemptionCallback at each step boundary
        self.deferred = False
        self._previous: dict = {}

    def install(self) -> bool:
        """Install the handlers (main thread only; returns whether they were installed)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for name in self.signals:
            number = getattr(signal, name)
            self._previous[number] = signal.signal(number, self._handle)
        return True

    def uninstall(self) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.received is None:
            self.received, self.received_after = name, self.boundary
        if not self.deferred:
            raise Preempted(f"stopped by {name} outside the training loop; nothing new was saved. "
                            f"{_continue_line(self.continue_command, None)}", signal=name)


_ACTIVE: Watch | None = None


@contextmanager
def watch(signals=DEFAULT_SIGNALS, continue_command: str | None = None):
    """Handle ``signals`` (`launch.preempt_signals`) for the run inside the block: outside the training
    loop a signal raises Preempted at once; inside it the trainers of tune.training.trainers defer it to
    the next step boundary (module docstring). ``continue_command`` is the command a message prints
    (default: `tune run <run folder>/recipe.yaml`). `tune run` wraps the method's training function in it."""
    global _ACTIVE
    here = Watch(signals, continue_command)
    if not here.install():
        yield here
        return
    previous, _ACTIVE = _ACTIVE, here
    try:
        yield here
    finally:
        _ACTIVE = previous
        here.uninstall()


def active() -> Watch | None:
    """The Watch of the enclosing ``watch`` block, if any."""
    return _ACTIVE


class PreemptionCallback(TrainerCallback):
    """The step-boundary agreement of the module docstring: when any rank holds a signal, every rank
    saves the step's checkpoint and stops; ``stopped`` is then ``(step, signal name, the step boundary
    passed when the first signal came)``, the job's earliest signal."""

    def __init__(self) -> None:
        self.watch: Watch | None = None
        self.stopped: tuple[int, str, int | None] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if self.watch is not None:
            self.watch.boundary = state.global_step  # 0, or the checkpoint's step on a resume

    def on_step_end(self, args, state, control, **kwargs):
        if self.watch is None:
            return
        self.watch.boundary = state.global_step  # first: a signal from now on is acted on here at the latest
        held = self.watch.received is not None
        if not distributed.any_rank(held):
            return
        seen = distributed.all_gather_objects((self.watch.received, self.watch.received_after) if held else None)
        first = min((s for s in seen if s), key=lambda s: -1 if s[1] is None else s[1])
        control.should_save = True
        if state.max_steps and state.global_step >= state.max_steps:
            return  # the last step: its checkpoint, then the run finishes as it would have
        self.stopped = (state.global_step, first[0], first[1])
        control.should_training_stop = True


class PreemptionMixin:
    """A Trainer mixin: ``train()`` runs with preemption signals deferred to step boundaries, agreed
    across ranks, and raises Preempted after the agreed checkpoint (module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.preemption = PreemptionCallback()
        callbacks = self.callback_handler.callbacks
        # before the numerical guard, so that its weight check (made when a step saves) sees the save
        guard = next((i for i, c in enumerate(callbacks) if isinstance(c, NonFiniteGuard)), len(callbacks))
        callbacks.insert(guard, self.preemption)

    def train(self, *args, **kwargs):
        run_dir = Path(self.args.output_dir).parent  # tune.training.arguments: checkpoints under run_dir
        with _deferred(run_dir) as here:
            self.preemption.watch, self.preemption.stopped = here, None
            if distributed.any_rank(here.received is not None):
                name = here.received or "a preemption signal (on another rank)"
                raise Preempted(f"stopped by {name} before the first training step; nothing new was saved. "
                                f"{_continue_line(here.continue_command, run_dir)}", signal=name)
            if distributed.is_main():
                (run_dir / RECORD).unlink(missing_ok=True)  # a new session: the last preemption is over
            output = super().train(*args, **kwargs)
        if self.preemption.stopped is None:
            return output
        step, name, after = self.preemption.stopped
        checkpoint = Path(self.args.output_dir) / f"checkpoint-{step}"
        command = here.continue_command or default_continue_command(run_dir)
        if distributed.is_main():
            write_record(run_dir, step=step, signal_name=name, received_after=after, checkpoint=checkpoint,
                         command=command)
        who = "every process finished" if distributed.world().distributed else "the run finished"
        raise Preempted(
            f"stopped by {name}: {who} step {step} and saved {checkpoint} "
            f"(complete). {_continue_line(command, run_dir, checkpoint.name)}", signal=name, step=step)


@contextmanager
def _deferred(run_dir: Path):
    """The enclosing Watch (or one with the default signals when `tune run` did not set one up) in
    deferred mode for the block; its previous mode after."""
    outer = active()
    if outer is not None:
        was, outer.deferred = outer.deferred, True
        try:
            yield outer
        finally:
            outer.deferred = was
        return
    with watch(DEFAULT_SIGNALS, default_continue_command(run_dir)) as here:
        here.deferred = True
        yield here


def default_continue_command(run_dir: Path) -> str:
    """`tune run <run_dir>/recipe.yaml`, the command that continues a run (tune.methods.run_folder_plan
    adds `--trust-remote-code` and the launch topology when `tune run` passes its own)."""
    return f"tune run {shlex.quote(str(Path(run_dir) / RECIPE_RECORD))}"


def _continue_line(command: str | None, run_dir: Path | None, checkpoint: str | None = None) -> str:
    point = f"from {checkpoint}" if checkpoint else "from its latest complete checkpoint"
    command = command or (default_continue_command(run_dir) if run_dir else "the same `tune run` command")
    return f"Continue this run {point} with:\n  {command}"


def write_record(run_dir: Path, *, step: int, signal_name: str, received_after: int | None, checkpoint: Path,
                 command: str) -> Path:
    """Write ``tune-preempted.json`` into ``run_dir`` (aside, then renamed into place); returns its path.
    ``received_after``: the last step boundary the job had passed when the first signal came (the
    checkpoint's ``step`` is the next boundary, or that one when the signal came just at it)."""
    record = {"preempted": True, "step": step, "signal": signal_name, "signal_after_step": received_after,
              "checkpoint": str(checkpoint), "continue": command, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path = Path(run_dir) / RECORD
    aside = path.with_name(f".{RECORD}.{os.getpid()}")
    aside.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(aside, path)
    return path


def read_record(run_dir: Path) -> dict | None:
    """The ``tune-preempted.json`` of ``run_dir`` (None when the run's last session was not preempted)."""
    try:
        return json.loads((Path(run_dir) / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
