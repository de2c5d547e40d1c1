"""Preemption of a job of 2 processes (torchrun, gloo on CPU), as PBS / SLURM and tune's job scripts do it:
SIGTERM or SIGUSR1 to the launcher (torchrun started with --signals-to-handle ...,SIGUSR1).

    - every rank finishes its step, the job saves one complete checkpoint at the first step boundary
      after the signal (agreed across ranks), with the RNG state of every rank, and stops: the
      workers exit 75, the main rank records `tune-preempted.json`, nothing final is written;
    - the same command continues the run: its losses and final weights equal an uninterrupted run's
      (both twins; DDP and FSDP2);
    - `kill -9` while a checkpoint is being written leaves the previous one chosen, and the run
      continues from it.

Each case runs the tiny twins for 24 short steps; the uninterrupted reference of each (twin, strategy) is
shared by the module. Run under `flock /tmp/tune-mp.lock` on a shared machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.distributed.conftest import free_port, job_env
from tune.training.preemption import RECORD, read_record
from tune.training.resume import checkpoint_folders, incomplete_checkpoints, is_complete, latest_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]

WORKER = Path(__file__).with_name("preemption_worker.py")
REPO = Path(__file__).resolve().parents[2]
STEPS = 24
TIMEOUT_S = 420
# SIGUSR1 is what tune's job scripts send before walltime: torchrun forwards it with --signals-to-handle
CASES = [("tiny-llm-jp-4-8b", "ddp", "SIGTERM"), ("tiny-llm-jp-4-32b-a3b", "ddp", "SIGUSR1"),
         ("tiny-llm-jp-4-8b", "fsdp2", "SIGUSR1"), ("tiny-llm-jp-4-32b-a3b", "fsdp2", "SIGTERM")]
FORWARDED = "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"


def write_recipe(folder: Path, rows: Path, model: str, strategy: str, save_steps: int = 1000) -> Path:
    """A full SFT of ``model`` on 2 processes, fp32, one log line per step, ``STEPS`` steps."""
    recipe = folder / "recipe-in.yaml"
    recipe.write_text("\n".join([
        f"model: {{name: {model}}}",
        "method: {name: sft, peft: none}",
        f"data: {{datasets: [{{path: {rows}, weight: 4}}], max_seq_len: 256}}",
        f"train: {{max_steps: {STEPS}, lr: 1.0e-3, min_lr: 0, warmup_steps: 2, per_device_batch_size: 2, "
        "weight_decay: 0.0, precision: fp32}",
        f"launch: {{nodes: 1, processes_per_node: 2, strategy: {strategy}}}",
        f"output: {{dir: {folder / 'run'}, save_steps: {save_steps}}}",
        "logging: {logging_steps: 1}",
    ]) + "\n")
    return recipe


def start(args: list[str], env: dict | None = None, log: Path | None = None) -> subprocess.Popen:
    """`torchrun --nproc-per-node 2 preemption_worker.py ARGS` in its own session, output into ``log``."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--master-addr=127.0.0.1",
               f"--master-port={free_port()}", FORWARDED, str(WORKER), *args]
    out = open(log, "w") if log else subprocess.DEVNULL
    return subprocess.Popen(command, cwd=REPO, env=job_env(env), stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def finish(proc: subprocess.Popen, log: Path, expect: int | None = 0) -> str:
    """Wait for ``proc`` (killing its session after TIMEOUT_S); its output; its status checked when ``expect``."""
    try:
        proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_session(proc)
        pytest.fail(f"the job did not end within {TIMEOUT_S} s:\n{log.read_text(errors='replace')[-4000:]}")
    text = log.read_text(errors="replace")
    if expect is not None:
        assert proc.returncode == expect, text[-4000:]
    return text


def kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL torchrun and every process under it (its workers run in sessions of their own)."""
    for pid in [proc.pid, *descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def wait_for(condition, proc: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.time() + TIMEOUT_S
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the job ended before {what}:\n{log.read_text(errors='replace')[-4000:]}")
        if time.time() > deadline:
            kill_session(proc)
            pytest.fail(f"no {what} after {TIMEOUT_S} s")
        time.sleep(0.01)


def logged_steps(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def final_weights(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    weights = {}
    for shard in sorted((run_dir / "final").glob("*.safetensors")):
        weights.update(load_file(shard))
    assert weights, f"no weights in {run_dir / 'final'}"
    return weights


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, chat_rows):
    """The uninterrupted run of each (twin, strategy): its losses by step and its final weights."""
    done: dict = {}

    def get(model: str, strategy: str) -> tuple[list[float], dict]:
        if (model, strategy) not in done:
            folder = tmp_path_factory.mktemp(f"whole-{model}-{strategy}")
            recipe = write_recipe(folder, chat_rows, model, strategy)
            log = folder / "log.txt"
            finish(start(["run", str(recipe)], log=log), log)
            steps = logged_steps(folder / "run")
            assert [s["step"] for s in steps] == list(range(1, STEPS + 1))
            done[model, strategy] = [s["loss"] for s in steps], final_weights(folder / "run")
        return done[model, strategy]

    return get


@pytest.mark.parametrize(("model", "strategy", "sent"), CASES)
def test_a_signal_to_torchrun_saves_at_the_next_step_and_the_run_continues_exactly(
        model, strategy, sent, tmp_path, chat_rows, uninterrupted):
    losses, weights = uninterrupted(model, strategy)
    recipe = write_recipe(tmp_path, chat_rows, model, strategy)
    run_dir = tmp_path / "run"
    log = tmp_path / "preempted.txt"
    status = tmp_path / "status"
    job = start(["run", str(recipe)], env={"TUNE_EXIT_STATUS_DIR": str(status)}, log=log)
    wait_for(lambda: len(logged_steps(run_dir)) >= 1, job, log, "first training step")
    job.send_signal(getattr(signal, sent))  # to torchrun, which forwards it to both workers
    text = finish(job, log, expect=None)

    record = read_record(run_dir)
    assert record is not None, text[-4000:]
    step = record["step"]
    # the checkpoint is the first step boundary the job passed after the first signal (or that one, when
    # the signal came right at it): every rank finished the step it was in, and no more
    assert record["signal"] == sent and 0 <= step - record["signal_after_step"] <= 1, record
    assert 1 <= step < STEPS, record
    assert text.count(f"preempted: stopped by {sent}: every process finished step {step} and saved") == 1
    assert text.count(f"Continue this run from checkpoint-{step} with:\n  tune run {run_dir / 'recipe.yaml'}") == 1
    # torchrun, signalled itself, exits 1 whatever its workers did: each worker's own status is 75
    assert [(status / f"rank-{rank}").read_text().strip() for rank in (0, 1)] == ["75", "75"]
    chosen = latest_checkpoint(run_dir)
    assert chosen is not None and chosen.name == f"checkpoint-{step}" and record["checkpoint"] == str(chosen)
    assert [p.name for p in checkpoint_folders(run_dir)] == [chosen.name]
    names = {p.name for p in chosen.iterdir()}
    assert {"rng_state_0.pth", "rng_state_1.pth", "scheduler.pt", "trainer_state.json"} <= names, names
    assert json.loads((chosen / "trainer_state.json").read_text())["global_step"] == step
    assert not (run_dir / "final").exists() and not (run_dir / "manifest.json").exists()
    assert [s["step"] for s in logged_steps(run_dir)] == list(range(1, step + 1))  # one line per step

    log = tmp_path / "continued.txt"
    text = finish(start(["run", str(run_dir / "recipe.yaml")], log=log), log)
    assert not (run_dir / RECORD).exists()
    steps = logged_steps(run_dir)
    assert [s["step"] for s in steps] == list(range(1, STEPS + 1))
    assert [s["loss"] for s in steps] == pytest.approx(losses, abs=1e-6, rel=0)
    resumed = final_weights(run_dir)
    assert resumed.keys() == weights.keys()
    worst = max((resumed[k].double() - weights[k].double()).abs().max().item() for k in weights)
    assert worst <= 1e-6, f"final weights differ from the uninterrupted run's by up to {worst:.3g}"


def test_kill_9_during_a_save_leaves_the_previous_checkpoint_chosen(tmp_path, chat_rows):
    recipe = write_recipe(tmp_path, chat_rows, "tiny-llm-jp-4-8b", "ddp", save_steps=2)
    run_dir = tmp_path / "run"
    flag = tmp_path / "saving"
    log = tmp_path / "killed.txt"
    job = start(["run", str(recipe)], env={"TUNE_TEST_HANG_SAVE_AT": f"4,{flag}"}, log=log)
    wait_for(flag.exists, job, log, "save of checkpoint-4")
    kill_session(job)  # kill -9 of torchrun and both workers, mid-save

    torn = run_dir / "checkpoints" / "checkpoint-4"
    assert (torn / "optimizer.pt").exists() and not is_complete(torn)
    assert latest_checkpoint(run_dir).name == "checkpoint-2"
    assert incomplete_checkpoints(run_dir) == [torn]

    log = tmp_path / "continued.txt"
    text = finish(start(["run", str(run_dir / "recipe.yaml")], log=log), log)
    assert "checkpoint-2" in text, text[-4000:]
    assert [s["step"] for s in logged_steps(run_dir)] == list(range(1, STEPS + 1))
    assert all(is_complete(p) for p in checkpoint_folders(run_dir))
