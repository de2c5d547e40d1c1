"""The same tiny full SFT on 1 process and on 2 (DDP, FSDP2, DeepSpeed ZeRO-3; both twins; 2 "nodes" x 1 process
on 127.0.0.1) at the same global batch trains the same model (tune.training.strategy).

Every job runs tests/distributed/topology_worker.py (tune's own SFT trainer for the recipe) for 3 steps of global
batch 4: one process with 2 sequences x 2 accumulation steps, two with 2 sequences each. fp32 compute (CPU),
fp32 master weights, the cosine with its min-lr hold (tune.training.schedule, which must also drive DeepSpeed's
optimizer). Runs are shared per session (one per twin and topology).

Tolerance: losses and final weights within 2e-6. The topology runs use ``train.adam_epsilon=1e-6`` instead of
1e-8: where a gradient element is only reduction-order noise around 0 (1e-10 against exactly 0, e.g. an
embedding row touched by no supervised token), Adam's ``m / (sqrt(v) + eps)`` turns the noise into a step of
up to lr/100 with eps 1e-8 (measured: ZeRO-3 vs one process, 2 of 1.47M embedding elements 4.0e-6 apart, every
other element within 3e-7); with eps 1e-6 such noise stays below 1e-7 and 2e-6 compares what the strategies
compute.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.distributed.launching import read_result, single, torchrun, worker_env

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

TWINS = {"dense": "recipes/tiny/sft-full.yaml", "moe": "recipes/tiny/moe-sft-full.yaml"}
COMMON = ["data.max_seq_len=256", "train.max_steps=3", "train.per_device_batch_size=2", "logging.logging_steps=1",
          "train.warmup_steps=1", "train.min_lr_hold_steps=1", "train.adam_epsilon=1e-6"]
TOLERANCE = 2e-6
EXPECTED_TYPE = {"ddp": "MULTI_CPU", "fsdp2": "FSDP", "deepspeed_zero3": "DEEPSPEED"}


class Runs:
    """The session's topology runs, each trained once on first use: ``get(twin, topology)`` -> (result, run_dir)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = worker_env(root / "cache")
        self.done: dict[tuple[str, str], tuple[dict, Path]] = {}

    def get(self, twin: str, topology: str) -> tuple[dict, Path]:
        key = (twin, topology)
        if key not in self.done:
            if not topology.startswith("one"):
                self.get(twin, "one")  # prepares the data cache once, before several processes read it
            run_dir = self.root / f"{twin}-{topology}"
            out = self.root / f"{twin}-{topology}.json"
            log = self.root / f"{twin}-{topology}.log"
            args = [TWINS[twin], str(out), *COMMON, f"output.dir={run_dir}"]
            if topology.endswith("-bf16"):
                topology, args = topology.removesuffix("-bf16"), args + ["train.precision=bf16"]
            if topology == "one":
                single("topology_worker.py", args + ["train.grad_accumulation=2"], self.env, log)
            elif topology == "two-nodes":
                torchrun("topology_worker.py", args + ["train.grad_accumulation=1", "launch.nodes=2",
                                                       "launch.strategy=fsdp2"], self.env, nodes=2, log=log)
            else:
                torchrun("topology_worker.py", args + ["train.grad_accumulation=1", "launch.processes_per_node=2",
                                                       f"launch.strategy={topology}"], self.env, nproc=2, log=log)
            self.done[key] = (read_result(out), run_dir)
        return self.done[key]


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> Runs:
    return Runs(tmp_path_factory.mktemp("topology"))


def final_weights(run_dir: Path) -> dict:
    """``final/`` loaded with plain transformers (no tune import in the loading path), as a state dict."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(run_dir / "final", dtype=torch.float32)
    return {name: tensor.detach() for name, tensor in model.state_dict().items()}


def largest_difference(left: dict, right: dict) -> float:
    assert left.keys() == right.keys()
    return max((left[name] - right[name]).abs().max().item() for name in left)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2", "deepspeed_zero3"])
@pytest.mark.parametrize("twin", ["dense", "moe"])
def test_two_processes_train_as_one(runs, twin, strategy):
    one, one_dir = runs.get(twin, "one")
    two, two_dir = runs.get(twin, strategy)
    assert two["world_size"] == 2
    assert two["distributed_type"] == EXPECTED_TYPE[strategy]  # FSDP really selected on CPU (cpu_sharding)
    assert len(two["losses"]) == len(one["losses"]) == 3
    for step, (a, b) in enumerate(zip(one["losses"], two["losses"]), start=1):
        assert abs(a - b) <= TOLERANCE, f"step {step}: one process {a}, {strategy} {b}"
    assert one["losses"][-1] < one["losses"][0]  # the steps trained something
    assert two["master_dtypes"] == ["torch.float32"]
    difference = largest_difference(final_weights(one_dir), final_weights(two_dir))
    assert difference <= TOLERANCE, f"final/ of {strategy} differs from one process by {difference}"


@pytest.mark.parametrize("twin", ["dense", "moe"])
def test_fsdp2_shards_every_parameter(runs, twin):
    result, _ = runs.get(twin, "fsdp2")
    sharding = result["sharding"]
    assert sharding
    for name, (full, local) in sharding.items():
        assert local <= -(-full // 2), f"{name}: rank 0 holds {local} of {full} elements"
    assert sum(local for _, local in sharding.values()) * 2 <= sum(full for full, _ in sharding.values()) + len(sharding)


@pytest.mark.parametrize("twin", ["dense", "moe"])
def test_zero3_partitions_every_parameter(runs, twin):
    result, _ = runs.get(twin, "deepspeed_zero3")
    sharding = result["sharding"]
    assert sharding
    for name, (full, local) in sharding.items():
        assert local <= -(-full // 2), f"{name}: rank 0 holds {local} of {full} elements"


def test_two_nodes_on_localhost_train_as_one(runs):
    one, one_dir = runs.get("dense", "one")
    two, two_dir = runs.get("dense", "two-nodes")
    assert two["world_size"] == 2 and two["distributed_type"] == "FSDP"
    for a, b in zip(one["losses"], two["losses"], strict=True):
        assert abs(a - b) <= TOLERANCE
    assert largest_difference(final_weights(one_dir), final_weights(two_dir)) <= TOLERANCE


# bf16 compute, fp32 masters: one process autocasts each op from the fp32 weights, FSDP2 casts the weights to
# bf16 for the whole forward and backward and reduces gradients in bf16 (tune.training.strategy). Same algorithm,
# other rounding: measured (dense twin, 3 steps) losses within 5e-4 relative (4.4e-3 absolute at step 3).
BF16_RELATIVE = 2e-3


def test_bf16_compute_under_fsdp2_keeps_fp32_masters_and_trains_as_one_process(runs):
    one, _ = runs.get("dense", "one-bf16")
    two, _ = runs.get("dense", "fsdp2-bf16")
    assert two["distributed_type"] == "FSDP" and two["master_dtypes"] == one["master_dtypes"] == ["torch.float32"]
    for step, (a, b) in enumerate(zip(one["losses"], two["losses"], strict=True), start=1):
        assert abs(a - b) <= BF16_RELATIVE * abs(a), f"step {step}: one process {a}, FSDP2 {b}"
    fp32, _ = runs.get("dense", "one")
    assert one["losses"] != fp32["losses"]  # the compute really ran in bf16


@pytest.fixture(scope="session")
def lora_fsdp2(runs):
    """LoRA of the dense twin under FSDP2, 4 steps with a checkpoint at step 2; then the same run resumed from a
    copy of that checkpoint. Returns (uninterrupted result, its run dir, resumed result, its run dir)."""
    args = ["recipes/tiny/sft-lora.yaml", *COMMON, "train.max_steps=4", "output.save_steps=2",
            "train.grad_accumulation=1", "launch.processes_per_node=2", "launch.strategy=fsdp2"]
    runs.get("dense", "one")  # the data cache
    whole, resumed = runs.root / "lora-whole", runs.root / "lora-resumed"
    torchrun("topology_worker.py", [args[0], str(runs.root / "lora-whole.json"), *args[1:], f"output.dir={whole}"],
             runs.env, log=runs.root / "lora-whole.log")
    shutil.copytree(whole, resumed, ignore=shutil.ignore_patterns("final", "checkpoint-4", "*.json.lock"))
    torchrun("topology_worker.py", [args[0], str(runs.root / "lora-resumed.json"), *args[1:], f"output.dir={resumed}"],
             runs.env, log=runs.root / "lora-resumed.log")
    return read_result(runs.root / "lora-whole.json"), whole, read_result(runs.root / "lora-resumed.json"), resumed


def test_lora_under_fsdp2_saves_one_adapter_that_peft_loads(lora_fsdp2):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    result, run_dir, _, _ = lora_fsdp2
    assert result["distributed_type"] == "FSDP"
    final = run_dir / "final"
    assert (final / "adapter_model.safetensors").exists() and not (final / "model.safetensors").exists()
    adapter = load_file(final / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    base = json_field(final / "adapter_config.json", "base_model_name_or_path")
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), final)
    loaded = {name: p for name, p in model.named_parameters() if "lora_" in name}
    assert len(loaded) == len(adapter)
    trained_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert all(t.abs().max() > 0 for t in trained_b)  # every rank's shard trained (B starts at zero)


def test_lora_under_fsdp2_resumes_exactly(lora_fsdp2):
    from safetensors.torch import load_file

    whole, whole_dir, resumed, resumed_dir = lora_fsdp2
    assert len(whole["losses"]) == 4 and whole["resumed_from"] is None
    assert resumed["resumed_from"].endswith("checkpoint-2")
    # steps 1-2 come from the checkpoint's log, 3-4 were trained after the resume
    assert resumed["losses"] == pytest.approx(whole["losses"], abs=1e-6)
    a = load_file(whole_dir / "final" / "adapter_model.safetensors")
    b = load_file(resumed_dir / "final" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    assert max((a[name] - b[name]).abs().max().item() for name in a) <= 1e-6


def json_field(path: Path, key: str):
    import json

    return json.loads(path.read_text())[key]
