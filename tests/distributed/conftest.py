"""Launching test jobs of several processes on this machine (gloo on CPU, `OMP_NUM_THREADS=1`).

    launch(args, nproc=2, ...)   `python -m torch.distributed.run --nproc-per-node N -m tune ARGS...` (or
                                 the instrumented tests/distributed/run_worker.py with ``worker=True``),
                                 with a hard timeout; returns the CompletedProcess (stdout and stderr
                                 of every rank, text)
    alone(args, rank, world)     one process of a job of ``world`` started by hand (as mpirun would start
                                 it), its peers never started: for rendezvous timeouts
    free_port()                  a free TCP port on 127.0.0.1

Every job of these tests runs on the tiny twins for 2-4 steps. They carry ``@pytest.mark.multiprocess``
(run by default and in CI); run them under `flock /tmp/tune-mp.lock` on a shared machine so that only
one job of several processes runs at a time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("run_worker.py")
REPO = Path(__file__).resolve().parents[2]


def pytest_configure(config):
    config.addinivalue_line("markers", "multiprocess: starts a job of several processes (gloo on CPU; tens of seconds)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def job_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(REPO))
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    env.update(extra or {})
    return env


def launch(args: list[str], *, nproc: int = 2, cwd: Path | None = None, env: dict | None = None,
           timeout: float = 300, worker: bool = False, nnodes: int = 1, node_rank: int = 0,
           port: int | None = None, monitor_interval: float = 0.1) -> subprocess.CompletedProcess:
    """Run `tune ARGS` as a job of ``nproc`` processes on this machine (module docstring).
    ``monitor_interval``: how often torchrun looks at its workers (it ends the others once one failed;
    a longer interval lets every rank exit by itself first)."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
               f"--nnodes={nnodes}", f"--node-rank={node_rank}", "--master-addr=127.0.0.1",
               f"--master-port={port or free_port()}", f"--monitor-interval={monitor_interval}"]
    command += [str(WORKER)] if worker else ["-m", "tune"]
    return subprocess.run(command + list(args), cwd=cwd or REPO, env=job_env(env), capture_output=True, text=True,
                          timeout=timeout)


def alone(args: list[str], *, rank: int, world: int, port: int, cwd: Path | None = None, env: dict | None = None,
          timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `tune ARGS` as rank ``rank`` of a job of ``world`` processes whose peers never start."""
    extra = {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
             "GROUP_RANK": str(rank), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), **(env or {})}
    return subprocess.run([sys.executable, "-m", "tune", *args], cwd=cwd or REPO, env={**job_env(), **extra},
                          capture_output=True, text=True, timeout=timeout)


def fresh_rows(folder: Path) -> Path:
    """A small conversation file in ``folder`` whose contents are new each time (the data cache misses once)."""
    import json
    import uuid

    rows = [
        {"messages": [{"role": "user", "content": "日本の首都は？"}, {"role": "assistant", "content": "東京です。"}]},
        {"messages": [{"role": "user", "content": "What is 2+3?"}, {"role": "assistant", "content": "2+3 is 5."}]},
        {"messages": [{"role": "user", "content": f"Session {uuid.uuid4().hex}"}, {"role": "assistant", "content": "OK."}]},
    ]
    path = folder / f"chat-{uuid.uuid4().hex[:8]}.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows * 4))
    return path


@pytest.fixture(scope="session")
def chat_rows(tmp_path_factory) -> Path:
    """fresh_rows, once per session."""
    return fresh_rows(tmp_path_factory.mktemp("rows"))


def write_job_recipe(folder: Path, rows: Path, *, model_recipe: str = "sft-full.yaml", processes: int = 2,
                     steps: int = 3, launch: str = "", extra: str = "") -> Path:
    """A recipe in ``folder`` extending the tiny ``model_recipe`` on ``rows``: ``steps`` steps of
    micro batch 2, logging every step, a checkpoint every 2 steps, ``processes`` processes on one
    node (plus the ``launch`` keys, e.g. `nodes: 2`); no `output.dir` (the default
    `runs/<name>-<date-time>` under the job's folder); ``extra``: more YAML lines."""
    recipe = folder / "job.yaml"
    recipe.write_text(
        f"base: {REPO / 'recipes' / 'tiny' / model_recipe}\n"
        f"data:\n  datasets: [{{path: {rows}, format: messages}}]\n  max_seq_len: 128\n"
        f"train: {{max_steps: {steps}, per_device_batch_size: 2, warmup_steps: 1}}\n"
        "output: {save_steps: 2}\nlogging: {logging_steps: 1}\n"
        f"launch: {{processes_per_node: {processes}{', ' + launch if launch else ''}}}\n" + extra)
    return recipe


def launch_nodes(args: list[str], *, nodes: int = 2, cwd: Path | None = None, node_env: list[dict] | None = None,
                 timeout: float = 300, worker: bool = False) -> list[subprocess.CompletedProcess]:
    """Run `tune ARGS` as ``nodes`` "nodes" of one process each on 127.0.0.1: one torchrun per node
    (``node_env[i]``: node i's own environment, e.g. a node-local `TUNE_CACHE`), started together;
    their results in node order."""
    port = free_port()
    node_env = node_env or [{} for _ in range(nodes)]
    processes = []
    for node in range(nodes):
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=1", f"--nnodes={nodes}",
                   f"--node-rank={node}", "--master-addr=127.0.0.1", f"--master-port={port}"]
        command += [str(WORKER)] if worker else ["-m", "tune"]
        processes.append(subprocess.Popen(command + list(args), cwd=cwd or REPO, env=job_env(node_env[node]),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=timeout)
            results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return results
