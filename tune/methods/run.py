"""`tune run`: locate the checkpoint, take and prepare the run folder, then hand the recipe to its method.

In order, each step refusing (UserError, exit 2) before the next, costlier one begins:

    1. job        under a multi-process launch, the process group is made (a peer that never comes
                  fails within `launch.timeout_minutes`: tune.training.distributed), then every rank
                  runs the preflight (tune.training.preflight): world size equals `launch.nodes` x
                  `launch.processes_per_node`, the same versions and recipe on every rank, a writable
                  `output.dir` with room for a checkpoint, and who prepares the data; on one process
                  the world size and the folder only
    2. folder     on the main rank: without `output.dir` in the recipe, the newest interrupted run
                  under `runs/` that this recipe continues is chosen
                  (tune.methods.run_folder_plan.continue_default_run); then the folder is judged,
                  reading only: a lease held by a live run (named, with what to do; ``break_lock``
                  overrides one that cannot be judged), a non-empty folder that is not a tune run, a
                  finished run, a recipe that differs from the interrupted run's in a key that must
                  not change (tune.training.resume_check). The folder it decided is the job's: it is
                  broadcast to every rank, so ranks started seconds apart never resolve two default
                  timestamped folders, and a resubmitted job (same command) continues its own run
    3. model      the checkpoint is located before torch, TRL or peft are imported: a `model.path`
                  without a checkpoint, or a hub id while the hub is unreachable, fails in about a
                  second instead of after the ~9 s those imports take
    4. machine    what this machine cannot run (flash attention without a GPU, a precision the
                  device lacks, Liger without a GPU: tune.models.machine_checks), before any data work
    5. lease      the main rank takes the folder's lease (tune.training.folder_lease; a dead or stale
                  one is taken over, said so), makes the plan again under it and carries it out: the
                  marker first, a start-over's removals, incomplete checkpoints removed, ``recipe.yaml``
                  recorded; the other ranks wait until it is done before they read the folder (its
                  checkpoint); the lease is heartbeated while the run trains and released when it ends
    6. method     the method's training function, from the METHODS table (tune.config.methods),
                  imported only now by its dotted path; its outputs: ``metrics.jsonl``,
                  checkpoints, ``manifest.json`` and ``final/``, each written by the main rank alone
                  (the data prepared once: tune.data.cache)

An interruption (Ctrl-C, SIGTERM from a scheduler or `kill`) or a crash while training prints the
exact command that continues the run (`tune run <output.dir>/recipe.yaml`), and releases the lease.
A preemption signal (`launch.preempt_signals`, SIGTERM and SIGUSR1 by default) is handled by
tune.training.preemption instead: every rank stops at the same step after one complete checkpoint,
and `tune` exits 75 (tune.errors.Preempted) with the same command.

Many processes: every rank runs this code; the main rank (global rank 0) alone decides the folder,
takes the lease, writes into the folder and prints (the others get a silent printer). A failure in
steps 1-5 or while loading data and model stops every rank at the same point and is printed once,
by the rank that found it (tune.training.distributed.failures_agreed); a failure every rank meets
at the same step while training (a non-finite number, a lost lease, a preemption) is printed by the
main rank, and every rank exits with its status.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import ExitStack, contextmanager
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from tune.config.loaded_recipe import LoadedRecipe
from tune.config.methods import METHODS
from tune.errors import UserError

if TYPE_CHECKING:
    from tune.methods.run_records import RunResult


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (a scheduler's preemption, `kill`) while training."""


def run_recipe(loaded: LoadedRecipe, break_lock: bool = False, printer=print) -> RunResult:
    """Train ``loaded.recipe`` (the steps of the module docstring); returns the method's RunResult
    (its manifest is also in ``output.dir``). ``break_lock`` (`tune run --break-lock`) takes over a
    lease on the folder that cannot be judged dead (never one of a process alive on this host).
    Under a multi-process launch the process group it made is closed when the run ends, however it ends."""
    from tune.training.distributed import close_process_group

    try:
        return _run(loaded, break_lock, printer)
    finally:
        close_process_group()


def _run(loaded: LoadedRecipe, break_lock: bool, printer) -> RunResult:
    from tune.data.cache import set_job_preparation
    from tune.methods.run_folder_plan import continue_default_run, plan_run_folder, prepare_run_folder
    from tune.models.checkpoints import locate_checkpoint
    from tune.models.machine_checks import check_machine
    from tune.training import distributed
    from tune.training.folder_lease import acquire_lease, lease_verdict, refusal
    from tune.training.preflight import run_preflight

    distributed.ensure_process_group(loaded.recipe.launch.timeout_minutes)
    here = distributed.world()
    main = here.is_main
    say = printer if main else _silent
    preflight = run_preflight(loaded)
    set_job_preparation(preflight.job if here.distributed else None)
    with distributed.failures_agreed():  # the folder is judged by the main rank alone, reading only
        if main:
            loaded = continue_default_run(loaded, say)
            run_dir = Path(loaded.recipe.output.dir)
            lease = lease_verdict(run_dir)
            if lease is not None and not (lease.takeover or (break_lock and lease.breakable)):
                raise refusal(run_dir, lease)
            plan_run_folder(run_dir, loaded)  # refusals before anything loads; made again under the lease
        checkpoint = locate_checkpoint(loaded.recipe.model)
        check_machine(loaded.recipe)
    if here.distributed:  # one run folder for the job: the main rank's (its default, or the run it continues)
        loaded = loaded.with_output_dir(Path(distributed.broadcast_from_main(loaded.recipe.output.dir)))
    run_dir = Path(loaded.recipe.output.dir)
    with ExitStack() as lease_held:
        with distributed.failures_agreed():  # the other ranks wait here until the folder is prepared
            if main:
                lease_held.enter_context(acquire_lease(run_dir, break_lock=break_lock, printer=printer))
                prepare_run_folder(plan_run_folder(run_dir, loaded), loaded, printer)
        return _train(loaded, run_dir, checkpoint, main)


def _silent(line: str) -> None:
    """The printer of the ranks other than the main one: the main rank reports for the job."""


def _agreed_in_training() -> tuple[type[BaseException], ...]:
    """The UserErrors every rank raises at the same step after an agreement (a non-finite number, a
    lost lease, a preemption): the main rank prints them, the others stop silently with their status."""
    from tune.errors import Preempted
    from tune.training.checkpoint_guard import LeaseLost
    from tune.training.nan_guard import NonFiniteTraining

    return NonFiniteTraining, LeaseLost, Preempted


def _train(loaded: LoadedRecipe, run_dir: Path, checkpoint, main: bool = True) -> RunResult:
    """The method's training function on the prepared folder; an interruption or a crash prints the
    command that continues the run before it propagates (on the main rank: once for the job)."""
    from tune.methods.run_folder_plan import continue_command
    from tune.training.distributed import StoppedElsewhere, exit_status

    from tune.training.preemption import watch

    module, function = METHODS[loaded.recipe.method.name].train.split(":")
    train = getattr(import_module(module), function)
    try:
        # a preemption signal (launch.preempt_signals) stops the job at an agreed step with a checkpoint
        # (tune.training.preemption); SIGTERM, when it is not one of them, interrupts as Ctrl-C does
        with _sigterm_interrupts(), watch(loaded.recipe.launch.preempt_signals, continue_command(loaded, run_dir)):
            if main:
                return train(loaded.recipe, run_dir, checkpoint)
            return train(loaded.recipe, run_dir, checkpoint, printer=_silent)
    except KeyboardInterrupt as exc:
        if main:
            what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
            _say_how_to_continue(f"{what}", loaded, run_dir, continue_command)
        raise
    except UserError as error:
        if not main and isinstance(error, _agreed_in_training()):
            raise StoppedElsewhere(exit_status(error)) from None
        raise  # a refusal says what to change; the same command would stop again
    except Exception:
        if main:
            _say_how_to_continue("stopped by the error below", loaded, run_dir, continue_command)
        raise


def _say_how_to_continue(what: str, loaded: LoadedRecipe, run_dir: Path, continue_command) -> None:
    from tune.training.resume import latest_checkpoint

    checkpoint = latest_checkpoint(run_dir)
    point = f"from {checkpoint.name}" if checkpoint else "(no checkpoint was complete yet: it starts over)"
    print(f"\n{what}; continue this run {point} with:\n  {continue_command(loaded, run_dir)}", file=sys.stderr)


@contextmanager
def _sigterm_interrupts():
    """While training, SIGTERM raises ``Terminated`` in the main thread (instead of ending the process
    at once), so the lease is released and the command that continues the run is printed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
