"""One rank of a topology test run: build tune's SFT trainer for a recipe, train, save `final/`, and (rank 0)
write what the tests compare into a JSON file.

    python topology_worker.py RECIPE OUT_JSON [KEY=VALUE ...]        (under torchrun, or alone)

It drives tune's own pieces (load_recipe, build_sft_trainer, which applies tune.training.strategy) rather
than `tune run`, so that the strategy wiring is tested on its own. Written by rank 0:

    world_size, distributed_type   accelerate's view of the job (FSDP / DEEPSPEED / MULTI_CPU / NO)
    losses                         the logged training loss of every step (logging_steps 1)
    sharding                       per parameter: full numel and the numel this rank holds
                                   (FSDP2: the DTensor's local shard; ZeRO-3: the partition ds_tensor)
    resumed_from                   the checkpoint this session resumed from (None for a fresh run)
    master_dtypes                  the dtypes of the tensors the optimizer updates (the master weights)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def held(param) -> tuple[int, int]:
    """(full numel, numel this rank holds) of a parameter under any strategy."""
    from torch.distributed.tensor import DTensor

    if isinstance(param, DTensor):
        return param.numel(), param.to_local().numel()
    if hasattr(param, "ds_tensor"):  # DeepSpeed ZeRO-3: the parameter's own data is empty between uses
        return int(param.ds_numel), int(param.ds_tensor.numel())
    return param.numel(), param.numel()


def master_dtypes(optimizer) -> list[str]:
    """The dtypes of the tensors the innermost optimizer updates (accelerate's and DeepSpeed's wrappers
    unwrapped: under ZeRO the torch optimizer holds the flat fp32 partitions)."""
    while True:
        for flat in ("fp32_partitioned_groups_flat", "single_partition_of_fp32_groups"):  # ZeRO-3, ZeRO-1/2
            if getattr(optimizer, flat, None):
                return sorted({str(t.dtype) for t in getattr(optimizer, flat)})
        if not hasattr(optimizer, "optimizer"):
            return sorted({str(p.dtype) for group in optimizer.param_groups for p in group["params"]})
        optimizer = optimizer.optimizer


def main(recipe_path: str, out: str, overrides: list[str]) -> None:
    from tune.methods.sft import build_sft_trainer
    from tune.recipe import load_recipe
    from tune.training.continuation import train_or_finish
    from tune.training.distributed import world

    here = world()
    recipe = load_recipe(recipe_path, overrides).recipe
    run_dir = Path(recipe.output.dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    printer = print if here.is_main else (lambda line: None)
    ready = build_sft_trainer(recipe, run_dir, printer=printer)
    trainer = ready.trainer
    train_or_finish(trainer, ready.inputs.resume_from, printer)
    model = trainer.model_wrapped if recipe.launch.strategy.startswith("deepspeed") else trainer.model
    sharding = {name: held(param) for name, param in model.named_parameters()}
    trainer.save_model(str(run_dir / "final"))
    if here.is_main:
        Path(out).write_text(json.dumps({
            "world_size": trainer.accelerator.num_processes,
            "distributed_type": str(trainer.accelerator.distributed_type).split(".")[-1],
            "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
            "sharding": sharding,
            "resumed_from": str(ready.inputs.resume_from) if ready.inputs.resume_from else None,
            "master_dtypes": master_dtypes(trainer.optimizer),
        }))


if __name__ == "__main__":
    from tune.training.distributed import close_process_group

    try:
        main(sys.argv[1], sys.argv[2], sys.argv[3:])
    finally:
        close_process_group()  # as `tune run` does: left to the interpreter's exit, gloo can abort the process
