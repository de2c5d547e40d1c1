"""The pin of tune.training.cpu_sharding, the one patch of accelerate tune carries: on CPU (gloo), accelerate
given an FSDP plugin still runs plain DDP by itself, and with the patch it shards (FSDP2, DTensor).

When the first assertion fails, accelerate has started selecting FSDP on CPU by itself: delete
tune/training/cpu_sharding.py and its call in tune.training.arguments, and this test.
"""

from __future__ import annotations

import pytest

from tests.distributed.launching import read_result, torchrun, worker_env

pytestmark = pytest.mark.multiprocess


def test_accelerate_needs_the_patch_to_shard_on_cpu(tmp_path):
    out = tmp_path / "probe.json"
    torchrun("cpu_sharding_worker.py", [str(out)], worker_env(tmp_path / "cache"), nproc=2, log=tmp_path / "probe.log")
    result = read_result(out)
    plain, patched = result["plain"], result["patched"]
    assert plain == {"distributed_type": "MULTI_CPU", "dtensor": False, "local_rows": 8}, (
        f"accelerate now chooses {plain} on CPU with an FSDP plugin by itself: tune.training.cpu_sharding is no "
        "longer needed (module docstring)")
    assert patched == {"distributed_type": "FSDP", "dtensor": True, "local_rows": 4}, (
        f"with tune.training.cpu_sharding installed accelerate chose {patched}: the patch no longer takes effect")
