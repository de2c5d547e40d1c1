"""One rank of tests/models/test_plan_sharded.py: build tune's SFT trainer for a recipe, train one step and
write the bytes this rank holds right after the optimizer step into OUT_DIR/rank-N.json.

    python plan_worker.py RECIPE OUT_DIR [KEY=VALUE ...]        (under torchrun)

Bytes per part, as this rank holds them:
    weights           FSDP2: each DTensor's local shard; ZeRO-3: each parameter's partition (ds_tensor); else the tensor
    gradients         FSDP2: each gradient's local shard; ZeRO: the optimizer's flat gradient partitions
    master_copy       ZeRO: the fp32 flat partitions the optimizer updates (0 elsewhere: the weights are the masters)
    optimizer_states  every tensor of the innermost torch optimizer's state
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def local(tensor) -> int:
    from torch.distributed.tensor import DTensor

    if isinstance(tensor, DTensor):
        tensor = tensor.to_local()
    return tensor.numel() * tensor.element_size()


def measure(model, optimizer) -> dict:
    inner = optimizer
    while hasattr(inner, "optimizer"):
        zero = inner if hasattr(inner, "fp32_partitioned_groups_flat") or hasattr(inner, "single_partition_of_fp32_groups") else None
        inner = inner.optimizer
        if zero is not None:
            break
    else:
        zero = None
    weights = sum(int(p.ds_tensor.numel() * p.ds_tensor.element_size()) if hasattr(p, "ds_tensor") else local(p)
                  for p in model.parameters())
    states = sum(t.numel() * t.element_size() for s in inner.state.values() for t in s.values()
                 if hasattr(t, "numel") and t.dim())
    if zero is None:
        return {"weights": weights, "gradients": sum(local(p.grad) for p in model.parameters() if p.grad is not None),
                "master_copy": 0, "optimizer_states": states}
    flat = getattr(zero, "fp32_partitioned_groups_flat", None) or zero.single_partition_of_fp32_groups
    master = sum(t.numel() * t.element_size() for t in flat)
    return {"weights": weights, "gradients": sum(t.grad.numel() * t.grad.element_size() for t in flat if t.grad is not None),
            "master_copy": master, "optimizer_states": states}


def main(recipe_path: str, out_dir: str, overrides: list[str]) -> None:
    from transformers import TrainerCallback

    from tune.methods.sft import build_sft_trainer
    from tune.recipe import load_recipe

    rank = int(os.environ.get("RANK", "0"))
    recipe = load_recipe(recipe_path, overrides).recipe
    run_dir = Path(recipe.output.dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ready = build_sft_trainer(recipe, run_dir, printer=(print if rank == 0 else (lambda line: None)))
    trainer = ready.trainer
    found: dict = {}

    class Measure(TrainerCallback):
        def on_optimizer_step(self, args, state, control, **kw):
            if not found:
                model = trainer.model_wrapped if recipe.launch.strategy.startswith("deepspeed") else trainer.model
                found.update(measure(model, trainer.optimizer))
                found["distributed_type"] = str(trainer.accelerator.distributed_type).split(".")[-1]

    trainer.add_callback(Measure())
    trainer.train()
    Path(out_dir, f"rank-{rank}.json").write_text(json.dumps(found))


if __name__ == "__main__":
    from tune.training.distributed import close_process_group

    try:
        main(sys.argv[1], sys.argv[2], sys.argv[3:])
    finally:
        close_process_group()  # as `tune run` does: left to the interpreter's exit, gloo can abort the process
