"""Where this process stands in a job, and the few collectives tune itself needs (a thin layer over
torch.distributed; the training loop's own communication is accelerate's / DeepSpeed's).

    World                      rank, local_rank, world_size, node_rank, local_world_size of this process
    world()                    read from the launcher's environment: torchrun / accelerate (RANK,
                               LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK), else Open MPI's
                               mpirun (OMPI_COMM_WORLD_*), else one process
    is_main()                  global rank 0 (or not launched as a job): the one writer of the run folder
    is_local_main()            local rank 0: the one process of a node (node-local caches)
    ensure_process_group(m)    torch.distributed's default group, gloo on CPU and nccl on a CUDA GPU,
                               with a timeout of ``m`` minutes for the rendezvous and every collective;
                               a no-op on one process or when already initialised
    close_process_group()      destroy that group when the run ends (tune run does, however it ends)
    barrier()                  every rank waits for the others
    broadcast_from_main(v)     the main rank's ``v`` (any picklable) on every rank
    any_rank(flag)             true on every rank when any rank's ``flag`` is true (agreement at a step
                               boundary: a NaN, a signal)
    all_gather_objects(v)      every rank's ``v``, in rank order, on every rank
    failures_agreed()          a block every rank runs; a failure on any rank stops every rank at its
                               end, printed once (below)

On one process every collective is the identity (no process group, no torch.distributed import
beyond what the caller already did). With several processes they need the default group
(``ensure_process_group``, called first thing by `tune run`); calling one before it is a programming
error and raises, never a silent no-op that would let ranks disagree.

Launchers. torchrun (and accelerate, which runs torchrun's agent) exports RANK, LOCAL_RANK,
WORLD_SIZE, LOCAL_WORLD_SIZE and GROUP_RANK (the node's rank). A job started by ``mpirun -np N
python -m tune run`` directly exports only OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK /
_LOCAL_SIZE / _NODE_RANK: ``ensure_process_group`` copies them into torch's names so that
torch.distributed, transformers and accelerate all see the same world (MASTER_ADDR and MASTER_PORT
must then be set by the job script). When both are present (mpirun starting one torchrun per node,
the ABCI job scripts) torchrun's names win: Open MPI's then describe the launchers, not the workers.

Failures print once. ``failures_agreed()`` wraps a block that every rank runs (a folder decision,
loading the data and the model): the ranks exchange, at its end, whether the block failed, and when
any did, every rank stops there. The rank that found a failure raises it (the CLI prints it, exit 2
for a UserError); when several ranks found the same message, only the lowest prints it; every other
rank raises ``StoppedElsewhere`` (a SystemExit with the failing rank's exit status: nothing printed,
the process exits non-zero). A failure that only echoes another rank's (``echo = True`` on the
exception: a rank that waited for data the preparing rank failed to make) is printed only when no
rank found the failure itself. The block must hold no collective of its own: a rank that failed
before reaching one would pair the others' collective with this exchange.

Timeouts. ``timeout_minutes`` (``launch.timeout_minutes``) bounds the rendezvous of this group (a
peer that never starts: ``RendezvousTimeout``, a UserError naming the ranks that came and what to
do, instead of a hang) and every later collective (NCCL / gloo watchdogs). A rendezvous between
torchrun's agents on several nodes happens before tune starts and is bounded by torchrun's
``--rdzv-conf timeout=SECONDS`` (the job scripts pass it). Long waits that are not collectives
(data preparation on the main rank) happen on the file system instead (tune.data.cache), so they
never meet this timeout.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from tune.errors import UserError

# Open MPI's names for what torchrun calls RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK.
OMPI_NAMES = {
    "RANK": "OMPI_COMM_WORLD_RANK",
    "WORLD_SIZE": "OMPI_COMM_WORLD_SIZE",
    "LOCAL_RANK": "OMPI_COMM_WORLD_LOCAL_RANK",
    "LOCAL_WORLD_SIZE": "OMPI_COMM_WORLD_LOCAL_SIZE",
    "GROUP_RANK": "OMPI_COMM_WORLD_NODE_RANK",
}


class StoppedElsewhere(SystemExit):
    """This rank stops because another rank failed and printed why (``code``: that failure's exit
    status; a SystemExit, so nothing is printed here and the process exits with it)."""


class RendezvousTimeout(UserError):
    """The job's processes did not all meet within ``launch.timeout_minutes`` (one never started or
    cannot reach the main rank's address)."""


@dataclass(frozen=True)
class World:
    """This process's place in the job; ``World()`` is one process alone."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    node_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_local_main(self) -> bool:
        return self.local_rank == 0

    @property
    def nodes(self) -> int:
        """How many nodes the job spans (processes are spread evenly, as torchrun and mpirun do)."""
        return max(1, self.world_size // max(1, self.local_world_size))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def describe(self) -> str:
        """`rank 1 of 4 (node 0, local rank 1)`."""
        return f"rank {self.rank} of {self.world_size} (node {self.node_rank}, local rank {self.local_rank})"


def _launcher_env(environ=None) -> dict[str, str]:
    """torch's names for this process's place, from torchrun's variables or else Open MPI's."""
    environ = os.environ if environ is None else environ
    if "RANK" in environ and "WORLD_SIZE" in environ:
        return {name: environ[name] for name in OMPI_NAMES if name in environ}
    if "OMPI_COMM_WORLD_RANK" in environ and "OMPI_COMM_WORLD_SIZE" in environ:
        return {name: environ[ompi] for name, ompi in OMPI_NAMES.items() if ompi in environ}
    return {}


def world(environ=None) -> World:
    """This process's World, read from the launcher's environment (``environ``: os.environ by default)."""
    env = _launcher_env(environ)
    if not env:
        return World()
    size = int(env["WORLD_SIZE"])
    rank = int(env["RANK"])
    local_size = int(env.get("LOCAL_WORLD_SIZE", size))
    local_rank = int(env.get("LOCAL_RANK", rank % max(1, local_size)))
    node = int(env.get("GROUP_RANK", rank // max(1, local_size)))
    return World(rank, local_rank, size, node, local_size)


def is_main() -> bool:
    """Whether this process is the job's main one (global rank 0, or not launched as a job)."""
    return world().is_main


def is_local_main() -> bool:
    """Whether this process is the first of its node (local rank 0)."""
    return world().is_local_main


def export_launcher_environment() -> None:
    """Copy Open MPI's rank variables into torch's names (RANK, WORLD_SIZE, LOCAL_RANK,
    LOCAL_WORLD_SIZE, GROUP_RANK) when no torch launcher set them; a no-op otherwise."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return
    for name, value in _launcher_env().items():
        os.environ.setdefault(name, value)


def _dist():
    """torch.distributed with its default group, when this job has several processes; None on one."""
    if not world().distributed:
        return None
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "tune.training.distributed: a collective was called in a job of several processes before "
            "ensure_process_group(); call it first (tune run does, before anything else)"
        )
    return dist


def ensure_process_group(timeout_minutes: float) -> None:
    """Initialise torch.distributed's default group (gloo on CPU, nccl on a CUDA GPU) with a timeout of
    ``timeout_minutes`` for the rendezvous and every collective, when the job has several processes
    and no group exists yet. A rendezvous that does not complete in time raises RendezvousTimeout."""
    export_launcher_environment()
    here = world()
    if not here.distributed:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise UserError(
                f"{here.describe()}: {name} is not set. A job of several processes started without torchrun "
                "needs MASTER_ADDR (the first node's address) and MASTER_PORT (a free port on it) in every "
                "process's environment; the job scripts of `tune launch` set both"
            )
    timeout = timedelta(seconds=max(1.0, timeout_minutes * 60.0))
    if not here.is_main and not _reachable(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), timeout):
        raise _rendezvous_timeout(here, timeout_minutes)
    if torch.cuda.is_available():
        torch.cuda.set_device(here.local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    try:
        dist.init_process_group(backend, timeout=timeout)
    except Exception as error:  # DistStoreError / DistNetworkError / RuntimeError, by torch version
        text = str(error)
        if not any(word in text.lower() for word in ("timeout", "timed out", "time out")):
            raise
        raise _rendezvous_timeout(here, timeout_minutes) from None
    # A rendezvous that completes leaves the collectives' timeout in force; agree once that every rank
    # is here before anything else is said (preflight's checks follow).


def close_process_group() -> None:
    """Destroy torch.distributed's default group when one exists (a local operation, no collective).
    Left to the interpreter's exit, gloo's worker threads can be torn down while still joinable, and
    the process then aborts ("terminate called without an active exception", SIGABRT) after a run
    that finished; seen on a rank of a 2-process FSDP2 job."""
    if not world().distributed:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _reachable(host: str, port: int, timeout: timedelta) -> bool:
    """Whether the main rank's rendezvous port at ``host:port`` accepts a connection within ``timeout``
    (polled from Python: torch's own store client logs a C++ stack trace at every retry)."""
    import socket
    import time

    deadline = time.monotonic() + timeout.total_seconds()
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)


def _rendezvous_timeout(here: World, timeout_minutes: float) -> RendezvousTimeout:
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    return RendezvousTimeout(
        f"{here.describe()}: the job's {here.world_size} processes did not all meet at {where} within "
        f"launch.timeout_minutes ({timeout_minutes:g} min): a process never started, or cannot reach "
        "that address (a node that failed to boot, a firewall, a wrong MASTER_ADDR). Check the job's "
        "log of every node, then resubmit; the run folder is untouched and resumes")


def barrier() -> None:
    """Every rank waits until all have reached it (the identity on one process)."""
    dist = _dist()
    if dist is not None:
        dist.barrier()


def broadcast_from_main(value):
    """The main rank's ``value`` on every rank (any picklable; the identity on one process)."""
    dist = _dist()
    if dist is None:
        return value
    box = [value if world().is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank (one small all-reduce; ``flag`` on one process)."""
    dist = _dist()
    if dist is None:
        return bool(flag)
    import torch

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    box = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(box, op=dist.ReduceOp.MAX)
    return bool(box.item())


def all_gather_objects(value) -> list:
    """Every rank's ``value`` (any picklable), in rank order, on every rank (``[value]`` on one process)."""
    dist = _dist()
    if dist is None:
        return [value]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def exit_status(error: BaseException) -> int:
    """The exit status `tune` ends with for ``error``: a UserError's (``exit_status``, 2 by default;
    75 for a preemption), a SystemExit's code, 1 for anything else (a bug: its traceback is printed)."""
    if isinstance(error, SystemExit):
        return error.code if isinstance(error.code, int) else 1
    if isinstance(error, UserError):
        return int(getattr(error, "exit_status", 2))
    return 1


@contextmanager
def failures_agreed():
    """Run the block on every rank; when it failed on any rank, stop every rank at its end, printing
    once (module docstring). On one process it is transparent."""
    if not world().distributed:
        yield
        return
    failure = None
    try:
        yield
    except StoppedElsewhere:
        raise  # an inner block already agreed; every rank is leaving
    except Exception as error:  # a UserError, or a bug (its traceback printed by the rank that hit it)
        failure = error
    mine = None if failure is None else (str(failure), exit_status(failure), bool(getattr(failure, "echo", False)))
    reports = all_gather_objects(mine)
    failed = [(rank, report) for rank, report in enumerate(reports) if report is not None]
    if not failed:
        return
    found = [(rank, report) for rank, report in failed if not report[2]] or failed
    printers = {}
    for rank, (text, _, _) in found:
        printers.setdefault(text, rank)
    if failure is not None and printers.get(mine[0]) == world().rank:
        raise failure
    raise StoppedElsewhere(mine[1] if mine is not None else found[0][1][1])
