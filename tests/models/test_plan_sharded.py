"""`tune plan`'s per-GPU figures under a sharding `launch.strategy`, against what each rank of a 2-process
tiny-twin run really holds right after its first optimizer step (tests/models/plan_worker.py).

Run on a shared machine under `flock /tmp/tune-mp.lock` (one multi-process job at a time)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tune.models.training_memory import training_memory
from tune.recipe import load_recipe

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("plan_worker.py")
TIMEOUT_S = 420
COMMON = ["train.max_steps=1", "output.save_steps=null", "launch.processes_per_node=2", "data.max_seq_len=256"]
# what each strategy lets a callback see after the step: DeepSpeed releases its gradient partitions inside
# its own step, so they are not compared there
PARTS = {"deepspeed_zero3": ("weights", "master_copy", "optimizer_states")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_job(strategy: str, out: Path) -> list[dict]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO), "TUNE_CACHE": str(out / "cache")}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    # the twin is built once before the ranks start (two ranks building it into an empty cache race)
    twin = "from tune.models.presets import get_preset; from tune.models.tiny_twins import ensure_twin; " \
           "ensure_twin(get_preset('tiny-llm-jp-4-8b'))"
    subprocess.run([sys.executable, "-c", twin], env=env, cwd=REPO, check=True, timeout=TIMEOUT_S)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), str(WORKER), "tiny/sft-full", str(out), *COMMON,
               f"launch.strategy={strategy}", f"output.dir={out / 'run'}"]
    try:
        done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S,
                              start_new_session=True)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the 2-process {strategy} run did not finish within {TIMEOUT_S} s")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return [json.loads((out / f"rank-{rank}.json").read_text()) for rank in range(2)]


@pytest.mark.parametrize("strategy", ["deepspeed_zero3"])
def test_each_rank_holds_what_the_plan_says(strategy, tmp_path):
    recipe = load_recipe("tiny/sft-full", [*COMMON, f"launch.strategy={strategy}"]).recipe
    planned = training_memory(recipe, on_gpu=False)
    one = training_memory(load_recipe("tiny/sft-full", ["launch.processes_per_node=1"]).recipe, on_gpu=False)
    ranks = run_job(strategy, tmp_path)
    for held in ranks:
        assert held["distributed_type"] == ("DEEPSPEED" if strategy.startswith("deepspeed") else "FSDP")
        for part in PARTS.get(strategy, ("weights", "gradients", "optimizer_states")):
            assert getattr(planned, part) == pytest.approx(held[part], rel=0.25), part
    # and the figures really are divided: each rank holds about half of one process's weights and states
    assert sum(r["weights"] for r in ranks) == pytest.approx(one.weights, rel=0.01)
    assert sum(r["optimizer_states"] for r in ranks) == pytest.approx(one.optimizer_states, rel=0.01)
