"""Starting the multi-process test workers: torchrun on this host (CPU, gloo, ``OMP_NUM_THREADS=1``), with a
free port and a hard timeout, so that a hung collective fails the test instead of the suite."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TIMEOUT_S = 420  # a 2-process run of the tiny twins takes 20-75 s on 2 busy cores


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", TUNE_CACHE=str(cache),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def torchrun(script: str, args: list[str], env: dict[str, str], nproc: int = 2, nodes: int = 1,
             log: Path | None = None) -> None:
    """Run ``script`` (a file next to this one) under torchrun: ``nproc`` processes on this host, or ``nodes``
    torchrun agents of one process each, rendezvousing on 127.0.0.1 as separate nodes would. Fails the test
    with the output's tail on a non-zero exit or after TIMEOUT_S."""
    path = str(HERE / script)
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    if nodes == 1:
        commands = [torchrun + ["--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
                                "--master_port", str(free_port()), path, *args]]
    else:
        port = str(free_port())
        commands = [torchrun + ["--nnodes", str(nodes), "--node_rank", str(node), "--nproc_per_node", "1",
                                "--master_addr", "127.0.0.1", "--master_port", port, path, *args]
                    for node in range(nodes)]
    _run_all(commands, env, log)


def single(script: str, args: list[str], env: dict[str, str], log: Path | None = None) -> None:
    """Run ``script`` as one plain process (no launcher)."""
    _run_all([[sys.executable, str(HERE / script), *args]], env, log)


def _run_all(commands: list[list[str]], env: dict[str, str], log: Path | None) -> None:
    outputs = []
    procs = []
    for index, command in enumerate(commands):
        out = log.with_name(f"{log.name}.{index}") if log else None
        outputs.append(out)
        with open(out or os.devnull, "w") as handle:  # the child keeps its own copy of the descriptor
            procs.append(subprocess.Popen(command, env=env, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT,
                                          start_new_session=True))
    failed = []
    for proc, command, out in zip(procs, commands, outputs):
        try:
            code = proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            for other in procs:
                _kill_group(other)
            code = "timeout"
        if code != 0:
            tail = out.read_text(errors="replace")[-4000:] if out and out.exists() else ""
            failed.append(f"{' '.join(command[2:5])} ... exited {code}:\n{tail}")
    assert not failed, "\n\n".join(failed)


def _kill_group(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def read_result(path: Path) -> dict:
    return json.loads(path.read_text())
