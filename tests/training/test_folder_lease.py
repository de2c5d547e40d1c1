"""One run per folder: the run-folder marker and the lease (tune.training.folder_lease), without training.

Leases of other hosts are faked by writing the lease file with another host name and a chosen
heartbeat; processes of this host are real ones (a child that sleeps, or one that has exited).
"""

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from tune.errors import UserError
from tune.training.folder_lease import (LEASE, MARKER, STALE_AFTER_S, LeaseHeld, acquire_lease, is_run_folder,
                                        lease_verdict, mark_run_folder, process_start, this_process)


def write_lease(run_dir: Path, holder, heartbeat: float, token: str = "theirs") -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LEASE
    path.write_text(json.dumps({**asdict(holder), "token": token, "acquired": heartbeat, "heartbeat": heartbeat}))
    return path


@pytest.fixture
def sleeper():
    """A live process of this host (and its pid's start time)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child
    child.kill()
    child.wait()


def test_a_fresh_lease_of_another_host_refuses_naming_it_and_break_lock_takes_it(tmp_path):
    other = replace(this_process(), host="abci-node-0042", pid=4242, job="12345.pbs1")
    write_lease(tmp_path, other, heartbeat=time.time() - 45)
    with pytest.raises(LeaseHeld) as refused:
        acquire_lease(tmp_path, heartbeat=False)
    message = str(refused.value)
    assert "process 4242 on host abci-node-0042, job 12345.pbs1" in message and "heartbeat 45 s ago" in message
    assert "--break-lock" in message and isinstance(refused.value, UserError)
    said = []
    lease = acquire_lease(tmp_path, break_lock=True, heartbeat=False, printer=said.append)
    assert "breaking (--break-lock) the lease" in said[0] and "abci-node-0042" in said[0]
    assert json.loads((tmp_path / LEASE).read_text())["pid"] == os.getpid()
    lease.release()
    assert not (tmp_path / LEASE).exists()


def test_a_stale_lease_of_another_host_is_taken_over_and_said_so(tmp_path):
    other = replace(this_process(), host="abci-node-0042", pid=4242)
    write_lease(tmp_path, other, heartbeat=time.time() - STALE_AFTER_S - 60)
    said = []
    with acquire_lease(tmp_path, heartbeat=False, printer=said.append):
        assert said and "taking over the lease" in said[0] and "silent for 11 min (no heartbeat)" in said[0]


def test_the_lease_of_a_dead_process_of_this_host_is_taken_over(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = replace(this_process(), pid=int(gone.stdout), pid_start="1")
    write_lease(tmp_path, dead, heartbeat=time.time())  # a fresh heartbeat does not matter on this host
    said = []
    with acquire_lease(tmp_path, heartbeat=False, printer=said.append):
        assert "no longer running" in said[0]


def test_a_live_process_of_this_host_keeps_its_lease_even_against_break_lock(tmp_path, sleeper):
    alive = replace(this_process(), pid=sleeper.pid, pid_start=process_start(sleeper.pid))
    write_lease(tmp_path, alive, heartbeat=time.time() - 3 * STALE_AFTER_S)  # stalled heartbeat: still running
    for break_lock in (False, True):
        with pytest.raises(LeaseHeld, match=f"process {sleeper.pid} on host .*, which is running; wait for it"):
            acquire_lease(tmp_path, break_lock=break_lock, heartbeat=False)


def test_a_reused_pid_does_not_keep_a_dead_runs_lease(tmp_path, sleeper):
    reused = replace(this_process(), pid=sleeper.pid, pid_start="1")  # the pid now belongs to another process
    write_lease(tmp_path, reused, heartbeat=time.time())
    assert lease_verdict(tmp_path).state == "dead"


def test_an_unreadable_lease_needs_break_lock_until_it_is_old(tmp_path):
    (tmp_path / LEASE).write_text('{"host": "abci-no')
    with pytest.raises(LeaseHeld, match="a lease file that cannot be read"):
        acquire_lease(tmp_path, heartbeat=False)
    assert lease_verdict(tmp_path, now=time.time() + STALE_AFTER_S + 5).takeover
    acquire_lease(tmp_path, break_lock=True, heartbeat=False).release()


def test_heartbeat_rewrites_the_lease_and_notices_when_another_run_took_it(tmp_path):
    lease = acquire_lease(tmp_path, heartbeat=False)
    assert lease.beat(now=time.time() + 100)
    assert json.loads((tmp_path / LEASE).read_text())["heartbeat"] > lease.acquired + 99
    thief = replace(this_process(), host="abci-node-0007", pid=77)
    write_lease(tmp_path, thief, heartbeat=time.time())
    assert not lease.beat() and lease.lost and "process 77 on host abci-node-0007" in lease.lost_to
    lease.release()
    assert json.loads((tmp_path / LEASE).read_text())["host"] == "abci-node-0007"  # not ours: left alone


RACER = """
import os, sys, time
sys.path.insert(0, {root!r})
from tune.training.folder_lease import LeaseHeld, acquire_lease
start = float(sys.argv[1])
while time.time() < start:
    time.sleep(0.001)
try:
    lease = acquire_lease({run_dir!r}, heartbeat=False, printer=lambda line: None)
except LeaseHeld as exc:
    print("refused:", exc)
else:
    print("holds", flush=True)
    deadline = time.time() + 120
    while not os.path.exists({done!r}) and time.time() < deadline:  # hold until every other racer has answered
        time.sleep(0.05)
    lease.release()
"""


def test_of_processes_racing_for_one_folder_exactly_one_holds_it(tmp_path, repo_root):
    run_dir, done = tmp_path / "run", tmp_path / "done"
    script = RACER.format(root=str(repo_root), run_dir=str(run_dir), done=str(done))
    start = time.time() + 2
    racers = [subprocess.Popen([sys.executable, "-c", script, str(start)], stdout=subprocess.PIPE, text=True)
              for _ in range(4)]
    deadline = time.time() + 120
    while sum(racer.poll() is not None for racer in racers) < 3 and time.time() < deadline:
        time.sleep(0.05)
    done.touch()
    outputs = [racer.communicate(timeout=120)[0].strip() for racer in racers]
    assert sorted(o.split(":")[0] for o in outputs) == ["holds", "refused", "refused", "refused"], outputs
    holder = racers[[o.startswith("holds") for o in outputs].index(True)].pid
    assert all(f"process {holder} on host" in o and "which is running" in o for o in outputs if o.startswith("refused"))
    assert not (run_dir / LEASE).exists()


def test_the_marker_makes_a_folder_a_run_folder_and_is_never_rewritten(tmp_path):
    assert not is_run_folder(tmp_path)
    mark_run_folder(tmp_path)
    first = (tmp_path / MARKER).read_text()
    assert is_run_folder(tmp_path) and json.loads(first)["created_by"]["pid"] == os.getpid()
    mark_run_folder(tmp_path, replace(this_process(), host="elsewhere"))
    assert (tmp_path / MARKER).read_text() == first


def test_a_run_folder_of_tune_from_before_the_marker_is_recognised(tmp_path):
    (tmp_path / "recipe.yaml").write_text("# Resolved recipe (every key, defaults included) from /x/r.yaml\nmodel: {}\n")
    assert is_run_folder(tmp_path)
    (tmp_path / "recipe.yaml").write_text("model: {name: mine}\n")  # a user's own recipe file
    assert not is_run_folder(tmp_path)


def test_a_folder_that_cannot_be_created_is_a_user_error(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(UserError, match="a-file/run: cannot write there"):
        acquire_lease(tmp_path / "a-file" / "run", heartbeat=False)


def test_the_heartbeat_thread_keeps_the_lease_fresh_until_release(tmp_path):
    lease = acquire_lease(tmp_path, heartbeat=False)
    first = json.loads((tmp_path / LEASE).read_text())["heartbeat"]
    lease.start_heartbeat(every_s=0.05)
    deadline = time.time() + 10
    while json.loads((tmp_path / LEASE).read_text())["heartbeat"] == first and time.time() < deadline:
        time.sleep(0.02)
    assert json.loads((tmp_path / LEASE).read_text())["heartbeat"] > first
    lease.release()
    assert not (tmp_path / LEASE).exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("tune-lease-heartbeat")]
