"""A run folder's own files: the marker that makes a folder a tune run, and the lease of the run writing it.

    tune-run.json    the marker, written first into a new run folder (by `tune run`; `tune launch`
                     writes it too, with ``mark_run_folder``) and never rewritten: who created the
                     folder and when. A folder holding it is a tune run folder; `tune run` refuses to
                     write into a non-empty folder without it (a folder of tune before the marker,
                     whose `recipe.yaml` starts with tune's own header, counts as one and is marked).
    tune-lease.json  present while a run writes into the folder: who holds it (host, boot id, pid and
                     the pid's start time, the scheduler's job id) and a heartbeat, the wall-clock time
                     the holder last rewrote it (every ``HEARTBEAT_S``, from a daemon thread).

The lease is taken by creating the file exclusively (written aside, then hard-linked into place:
atomic on local file systems, NFS and Lustre, and never seen half-written) and removed when the run
ends, however it ends short of SIGKILL. A lease left behind is judged before anyone waits on it:

    same host, same boot, pid running with the recorded start time   alive: refused, --break-lock too
    same host, same boot, pid running, start time unknown            alive unless --break-lock (the pid
                                                                     may have been reused)
    same host, other boot, or pid gone / reused                      dead: taken over, said so
    another host, heartbeat older than ``STALE_AFTER_S``             stale: taken over, said so
    another host, fresh heartbeat                                    held: refused unless --break-lock
    unreadable file                                                  held unless older than
                                                                     ``STALE_AFTER_S``; --break-lock

A refusal names the holder, its heartbeat's age and what to do (``LeaseHeld``, a UserError: exit 2).
Taking over renames the old lease aside and checks that what was moved is what was judged, so two
processes breaking the same stale lease cannot both win. Clocks of hosts sharing a file system are
assumed within a few minutes of each other (NTP); ``STALE_AFTER_S`` is 10 minutes.

A holder whose lease was taken over by another process (its heartbeat stalled past the limit and a
run on another host broke it) notices at its next heartbeat: ``Lease.lost`` turns true and
tune.training.checkpoint_guard stops the run at the next step, so two runs never keep writing.

Many processes (the multi-node issue builds on this): the lease belongs to the job, not to each
process. Only the job's main process (global rank 0; ``is_main_process``) takes it and heartbeats,
recording the scheduler's job id and the world size; the other ranks never touch it, and a job
restarted by the scheduler under the same job id judges its own dead lease like any other (same
host: pid gone; other host: stale, or --break-lock at once). The marker is written by whichever
process creates the folder (`tune launch` on the submit side, else the main rank) and is the same
file for one process or many.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from tune.errors import UserError

MARKER = "tune-run.json"
LEASE = "tune-lease.json"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0
# The header tune wrote atop `recipe.yaml` before run folders had a marker (tune.config.loaded_recipe).
LEGACY_RECIPE_HEADER = "# Resolved recipe (every key, defaults included) from "
# Scheduler variables naming the job a process belongs to, first found wins.
JOB_VARIABLES = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "JOB_ID", "TORCHELASTIC_RUN_ID")


class LeaseHeld(UserError):
    """Another run holds the lease on the folder (the message names it and what to do)."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or wants) a lease: enough to tell, from any host, whether that process still runs."""

    host: str
    pid: int
    boot_id: str | None = None
    pid_start: str | None = None
    job: str | None = None
    world_size: int = 1

    def describe(self) -> str:
        """`process 123 on host a01 (job 42.pbs)`."""
        job = f", job {self.job}" if self.job else ""
        return f"process {self.pid} on host {self.host}{job}"


def this_process() -> Holder:
    """The Holder describing the current process."""
    pid = os.getpid()
    job = next((os.environ[name] for name in JOB_VARIABLES if os.environ.get(name)), None)
    return Holder(socket.gethostname(), pid, boot_id(), process_start(pid), job, int(os.environ.get("WORLD_SIZE", "1")))


def is_main_process() -> bool:
    """Whether this process is the job's main one (global rank 0, or not started by a launcher)."""
    return os.environ.get("RANK", "0") == "0"


def boot_id() -> str | None:
    """This machine's boot id (Linux), which changes at every reboot; None elsewhere."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (Linux ``/proc/PID/stat``), to tell a
    reused pid from the recorded one; None when unknown (no such process, not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # after the command name, which may hold spaces
    return fields[19] if len(fields) > 19 else None


def pid_running(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (signal 0: exists, even if owned by another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


# ---------------------------------------------------------------- the marker


def is_run_folder(run_dir: Path) -> bool:
    """Whether ``run_dir`` is a tune run folder: it holds the marker, or is a run of tune from before
    the marker (its `recipe.yaml` starts with the header tune wrote)."""
    run_dir = Path(run_dir)
    if (run_dir / MARKER).is_file():
        return True
    try:
        with open(run_dir / "recipe.yaml", encoding="utf-8") as handle:
            return handle.read(len(LEGACY_RECIPE_HEADER)) == LEGACY_RECIPE_HEADER
    except (OSError, UnicodeDecodeError):
        return False


def mark_run_folder(run_dir: Path, holder: Holder | None = None) -> None:
    """Create ``run_dir`` if needed and write the marker into it, unless it is there already (never rewritten)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    holder = holder or this_process()
    record = {"tune_run": 1, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "created_by": asdict(holder)}
    create_exclusive(run_dir / MARKER, json.dumps(record, indent=2) + "\n")


def marker_created(run_dir: Path) -> float:
    """When the run folder was created: the marker's time (its file's mtime), else the folder's."""
    run_dir = Path(run_dir)
    for path in (run_dir / MARKER, run_dir):
        try:
            return path.stat().st_mtime
        except OSError:
            continue
    return 0.0


def create_exclusive(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` only if no file is there, atomically (aside, then a hard link into
    place: never seen half-written). True when this call created it."""
    aside = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    aside.write_text(text, encoding="utf-8")
    try:
        os.link(aside, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: exclusive create (a reader may see it half-written)
        try:
            with open(path, "x", encoding="utf-8") as handle:
                handle.write(text)
            return True
        except FileExistsError:
            return False
    finally:
        aside.unlink(missing_ok=True)


def replace_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a file aside renamed over it (readers see the old or the new, whole)."""
    aside = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    aside.write_text(text, encoding="utf-8")
    os.replace(aside, path)


# ---------------------------------------------------------------- the lease


@dataclass(frozen=True)
class Verdict:
    """What a lease file left in a folder means: ``state`` is alive, held, dead, stale or unreadable;
    ``takeover`` whether a new run may take it over without being asked, ``breakable`` whether
    --break-lock may; ``holder`` who holds it (None when unreadable); ``text`` the reason, in words."""

    state: str
    takeover: bool
    breakable: bool
    holder: Holder | None
    text: str


def read_lease(run_dir: Path) -> tuple[dict | None, bytes | None, float | None]:
    """The lease record of ``run_dir`` (None when unreadable), its raw bytes and its file's mtime;
    all None when there is no lease."""
    path = Path(run_dir) / LEASE
    try:
        raw = path.read_bytes()
        mtime = path.stat().st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return None, None, None
    try:
        record = json.loads(raw.decode("utf-8"))
        holder_of(record)
    except (ValueError, TypeError, KeyError):
        return None, raw, mtime
    return record, raw, mtime


def holder_of(record: dict) -> Holder:
    """The Holder a lease record names (raises KeyError/TypeError on a malformed record)."""
    fields = {name: record[name] for name in ("host", "pid")}
    fields.update({name: record.get(name) for name in ("boot_id", "pid_start", "job")})
    holder = Holder(**fields, world_size=int(record.get("world_size") or 1))
    if not isinstance(holder.host, str) or not isinstance(holder.pid, int):
        raise TypeError("malformed lease")
    return holder


def judge(record: dict | None, mtime: float | None, me: Holder, now: float | None = None,
          stale_after_s: float = STALE_AFTER_S) -> Verdict:
    """What the lease ``record`` (None: unreadable; its file's ``mtime``) means to process ``me``
    at time ``now`` (the table in the module docstring)."""
    now = time.time() if now is None else now
    if record is None:
        age = now - (mtime or now)
        if age > stale_after_s:
            return Verdict("stale", True, True, None, f"an unreadable lease file untouched for {_age(age)}")
        return Verdict("unreadable", False, True, None, f"a lease file that cannot be read (written {_age(age)} ago)")
    holder = holder_of(record)
    heartbeat = record.get("heartbeat") if isinstance(record.get("heartbeat"), (int, float)) else mtime or now
    age = now - heartbeat
    if holder.host == me.host and (holder.boot_id is None or me.boot_id is None or holder.boot_id == me.boot_id):
        if holder.pid == me.pid and holder.pid_start == me.pid_start:
            return Verdict("alive", False, False, holder, f"{holder.describe()} (this process)")
        if not pid_running(holder.pid):
            return Verdict("dead", True, True, holder, f"{holder.describe()}, which is no longer running")
        start = process_start(holder.pid)
        if holder.pid_start is not None and start is not None and start != holder.pid_start:
            return Verdict("dead", True, True, holder, f"{holder.describe()}, which is no longer running (its pid "
                                                        "now belongs to another process)")
        if holder.pid_start is not None and start is not None:
            return Verdict("alive", False, False, holder, f"{holder.describe()}, which is running")
        return Verdict("held", False, True, holder, f"{holder.describe()}, whose pid is in use (it may be that run, "
                                                    "or a reused pid)")
    if holder.host == me.host:
        return Verdict("dead", True, True, holder, f"{holder.describe()}, from before this host rebooted")
    if age > stale_after_s:
        return Verdict("stale", True, True, holder, f"{holder.describe()}, silent for {_age(age)} (no heartbeat)")
    return Verdict("held", False, True, holder, f"{holder.describe()}, heartbeat {_age(age)} ago")


def lease_verdict(run_dir: Path, me: Holder | None = None, now: float | None = None) -> Verdict | None:
    """The verdict on the lease left in ``run_dir`` (None when there is none). Reads only."""
    record, raw, mtime = read_lease(run_dir)
    if raw is None:
        return None
    return judge(record, mtime, me or this_process(), now)


def refusal(run_dir: Path, verdict: Verdict) -> LeaseHeld:
    """The error for a lease this process may not take."""
    text = f"output.dir {run_dir} is in use: its lease ({Path(run_dir) / LEASE}) is held by {verdict.text}"
    if verdict.breakable:
        text += (f". If that run is gone (a lease without a heartbeat is taken over after {_age(STALE_AFTER_S)}), "
                 "run again with --break-lock; otherwise wait for it, or choose another output.dir")
    else:
        text += "; wait for it to end (or stop it), or choose another output.dir"
    return LeaseHeld(text)


class Lease:
    """The lease this process holds on a run folder; ``release()`` (or leaving the ``with`` block)
    removes it. ``start_heartbeat()`` rewrites it every ``HEARTBEAT_S`` from a daemon thread."""

    def __init__(self, run_dir: Path, holder: Holder, token: str, acquired: float) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LEASE
        self.holder = holder
        self.token = token
        self.acquired = acquired
        self.lost_to: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def lost(self) -> bool:
        """Whether another process took the lease over (``lost_to`` says who)."""
        return self.lost_to is not None

    def record(self, now: float) -> str:
        return json.dumps({**asdict(self.holder), "token": self.token, "acquired": self.acquired,
                           "heartbeat": now, "heartbeat_every_s": HEARTBEAT_S}, indent=2) + "\n"

    def beat(self, now: float | None = None) -> bool:
        """Rewrite the heartbeat if the lease is still ours; else note who took it. True while held."""
        if self.lost:
            return False
        record, raw, _ = read_lease(self.run_dir)
        if record is None or record.get("token") != self.token:
            self.lost_to = holder_of(record).describe() if record else "another process (lease removed or unreadable)"
            return False
        replace_atomically(self.path, self.record(time.time() if now is None else now))
        return True

    def start_heartbeat(self, every_s: float = HEARTBEAT_S) -> None:
        def loop() -> None:
            while not self._stop.wait(every_s):
                try:
                    if not self.beat():
                        return
                except OSError:  # a file-system hiccup: try again at the next beat
                    continue

        self._thread = threading.Thread(target=loop, name=f"tune-lease-heartbeat:{self.run_dir.name}", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop the heartbeat and remove the lease file if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        _HELD.pop(self.run_dir.resolve(), None)
        record, _, _ = read_lease(self.run_dir)
        if record is not None and record.get("token") == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


_HELD: dict[Path, Lease] = {}


def held_lease(run_dir: Path) -> Lease | None:
    """The lease this process holds on ``run_dir``, if any (the training callbacks check it is not lost)."""
    return _HELD.get(Path(run_dir).resolve())


def acquire_lease(run_dir: Path, *, break_lock: bool = False, holder: Holder | None = None,
                  now: float | None = None, printer=print, heartbeat: bool = True) -> Lease:
    """Take the lease on ``run_dir`` (created if missing) for ``holder`` (default: this process).

    A lease left there is judged (``judge``): a dead or stale one is taken over and said so, one held
    by a live or unjudgeable run is refused with ``LeaseHeld`` unless ``break_lock`` allows it (never
    for a run provably alive on this host). Starts the heartbeat thread when ``heartbeat``."""
    run_dir = Path(run_dir)
    holder = holder or this_process()
    for _ in range(5):
        moment = time.time() if now is None else now
        lease = Lease(run_dir, holder, uuid.uuid4().hex, moment)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            created = create_exclusive(lease.path, lease.record(moment))
        except OSError as exc:
            raise UserError(f"output.dir {run_dir}: cannot write there ({exc.strerror or exc}); choose a folder "
                            "this user can create and write") from None
        if created:
            _HELD[run_dir.resolve()] = lease
            if heartbeat:
                lease.start_heartbeat()
            return lease
        record, raw, mtime = read_lease(run_dir)
        if raw is None:
            continue  # released meanwhile: try again
        verdict = judge(record, mtime, holder, moment)
        if not (verdict.takeover or (break_lock and verdict.breakable)):
            raise refusal(run_dir, verdict)
        if _remove_judged(lease.path, raw):
            how = "taking over" if verdict.takeover else "breaking (--break-lock)"
            printer(f"lease: {how} the lease on {run_dir} held by {verdict.text}")
    raise LeaseHeld(f"output.dir {run_dir}: could not take its lease ({run_dir / LEASE}): other processes keep "
                    "taking it at the same time; run one at a time")


def _remove_judged(path: Path, judged: bytes) -> bool:
    """Remove the lease at ``path`` if it still holds ``judged`` (renamed aside first, so that of two
    processes breaking it only one succeeds; a fresh lease moved by mistake is put back)."""
    aside = path.with_name(f".{path.name}.broken.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True  # someone else removed it: try to create ours
    try:
        if aside.read_bytes() == judged:
            return True
        try:
            os.link(aside, path)  # not the lease we judged: put it back
        except FileExistsError:
            pass
        return False
    finally:
        aside.unlink(missing_ok=True)


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
