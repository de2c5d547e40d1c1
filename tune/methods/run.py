"""`tune run`: locate the checkpoint, take and prepare the run folder, then hand the recipe to its method.

In order, each step refusing (UserError, exit 2) before the next, costlier one begins:

    1. launch     a multi-process `launch` section when the process was not started by a
                  distributed launcher with that many processes
    2. folder     without `output.dir` in the recipe, the newest interrupted run under `runs/` that
                  this recipe continues is chosen (tune.methods.run_folder_plan.continue_default_run);
                  then the folder is judged, reading only: a lease held by a live run (named, with
                  what to do; ``break_lock`` overrides one that cannot be judged), a non-empty folder
                  that is not a tune run, a finished run, a recipe that differs from the interrupted
                  run's in a key that must not change (tune.training.resume_check)
    3. model      the checkpoint is located before torch, TRL or peft are imported: a `model.path`
                  without a checkpoint, or a hub id while the hub is unreachable, fails in about a
                  second instead of after the ~9 s those imports take
    4. machine    what this machine cannot run (flash attention without a GPU, a precision the
                  device lacks, Liger without a GPU: tune.models.machine_checks), before any data work
    5. lease      the folder's lease is taken (tune.training.folder_lease; a dead or stale one is
                  taken over, said so), the plan made again under it and carried out: the marker
                  first, a start-over's removals, incomplete checkpoints removed, ``recipe.yaml``
                  recorded; the lease is heartbeated while the run trains and released when it ends
    6. method     the method's training function, from the METHODS table (tune.config.methods),
                  imported only now by its dotted path; its outputs: ``metrics.jsonl``,
                  checkpoints, ``manifest.json`` and ``final/``

An interruption (Ctrl-C, SIGTERM from a scheduler or `kill`) or a crash while training prints the
exact command that continues the run (`tune run <output.dir>/recipe.yaml`), and releases the lease.

Many processes: only the job's main process (global rank 0) takes the lease and writes into the
folder (marker, removals, record); the other ranks judge the folder the same way, reading only,
and train. The multi-node issue adds the barrier that makes them wait for the main process's
preparation (a start-over's removals) before they read the checkpoint.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from tune.config.loaded_recipe import LoadedRecipe
from tune.config.methods import METHODS
from tune.config.schema import Recipe
from tune.errors import UserError

if TYPE_CHECKING:
    from tune.methods.run_records import RunResult


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (a scheduler's preemption, `kill`) while training."""


def run_recipe(loaded: LoadedRecipe, break_lock: bool = False, printer=print) -> RunResult:
    """Train ``loaded.recipe`` (the steps of the module docstring); returns the method's RunResult
    (its manifest is also in ``output.dir``). ``break_lock`` (`tune run --break-lock`) takes over a
    lease on the folder that cannot be judged dead (never one of a process alive on this host)."""
    from tune.methods.run_folder_plan import continue_default_run, plan_run_folder
    from tune.models.checkpoints import locate_checkpoint
    from tune.training.folder_lease import is_main_process, lease_verdict, refusal

    _check_launch(loaded.recipe)
    main = is_main_process()
    loaded = continue_default_run(loaded, printer)
    recipe, run_dir = loaded.recipe, Path(loaded.recipe.output.dir)
    if main:
        lease = lease_verdict(run_dir)
        if lease is not None and not (lease.takeover or (break_lock and lease.breakable)):
            raise refusal(run_dir, lease)
    plan_run_folder(run_dir, loaded)  # refusals before anything loads; made again under the lease
    checkpoint = locate_checkpoint(recipe.model)
    from tune.models.machine_checks import check_machine

    check_machine(recipe)
    if not main:
        return _train(loaded, run_dir, checkpoint)
    from tune.methods.run_folder_plan import prepare_run_folder
    from tune.training.folder_lease import acquire_lease

    with acquire_lease(run_dir, break_lock=break_lock, printer=printer):
        prepare_run_folder(plan_run_folder(run_dir, loaded), loaded, printer)
        return _train(loaded, run_dir, checkpoint)


def _train(loaded: LoadedRecipe, run_dir: Path, checkpoint) -> RunResult:
    """The method's training function on the prepared folder; an interruption or a crash prints the
    command that continues the run before it propagates."""
    from tune.methods.run_folder_plan import continue_command

    module, function = METHODS[loaded.recipe.method.name].train.split(":")
    train = getattr(import_module(module), function)
    try:
        with _sigterm_interrupts():
            return train(loaded.recipe, run_dir, checkpoint)
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        _say_how_to_continue(f"{what}", loaded, run_dir, continue_command)
        raise
    except UserError:
        raise  # a refusal says what to change; the same command would stop again
    except Exception:
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


def _check_launch(recipe: Recipe) -> None:
    wanted = recipe.launch.nodes * recipe.launch.processes_per_node
    started = int(os.environ.get("WORLD_SIZE", "1"))
    if wanted != started:
        raise UserError(
            f"launch: the recipe asks for {recipe.launch.nodes} node(s) x {recipe.launch.processes_per_node} "
            f"process(es) but this process was started as {started}; start it with torchrun/accelerate "
            f"with {wanted} processes, or set launch.nodes=1 launch.processes_per_node=1 for one process"
        )
