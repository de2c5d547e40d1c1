"""One rank of the cpu_sharding pin test (tests/distributed/test_cpu_sharding.py), under a 2-process torchrun.

    python cpu_sharding_worker.py OUT_JSON

Asks accelerate for FSDP2 on CPU twice, as transformers' Trainer does (an Accelerator on CPU given an FSDP
plugin), first as accelerate ships, then with tune.training.cpu_sharding installed, and records each time
the distributed type accelerate chose and whether a prepared module's weight came back sharded (a DTensor
holding half of the rows on each rank). Rank 0 writes ``{"plain": {...}, "patched": {...}}``.
"""

from __future__ import annotations

import json
import sys


def probe() -> dict:
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import FullyShardedDataParallelPlugin
    from torch.distributed.tensor import DTensor

    AcceleratorState._reset_state(reset_partial_state=True)
    plugin = FullyShardedDataParallelPlugin(fsdp_version=2, reshard_after_forward=True)
    accelerator = Accelerator(cpu=True, fsdp_plugin=plugin)
    model = accelerator.prepare(torch.nn.Sequential(torch.nn.Linear(8, 8)))
    weight = next(param for name, param in model.named_parameters() if name.endswith("0.weight"))  # DDP: module.0.weight
    local = weight.to_local() if isinstance(weight, DTensor) else weight
    return {
        "distributed_type": str(accelerator.distributed_type).split(".")[-1],
        "dtensor": isinstance(weight, DTensor),
        "local_rows": local.shape[0],
    }


def main(out: str) -> None:
    import torch.distributed as dist

    from tune.training import cpu_sharding

    plain = probe()
    cpu_sharding.install()
    try:
        patched = probe()
    finally:
        cpu_sharding.uninstall()
    if dist.get_rank() == 0:
        with open(out, "w") as handle:
            json.dump({"plain": plain, "patched": patched}, handle)


if __name__ == "__main__":
    main(sys.argv[1])
