"""`tune run`: prepare the run folder, then hand the recipe to its method.

The run folder (``output.dir``) receives ``recipe.yaml`` (the fully resolved recipe, which
``tune run`` reproduces the run from) before anything heavy loads, then the method's outputs:
``metrics.jsonl``, ``manifest.json`` and ``final/``.

Refuses (UserError) to write into a folder that already holds a finished run unless
``output.overwrite`` is true, and a multi-process `launch` section when the process was not
started by a distributed launcher with that many processes.
"""

from __future__ import annotations

import os
from pathlib import Path

from tune.errors import UserError


def run_recipe(loaded):
    """Train ``loaded.recipe``; returns the method's outcome (its manifest is also in ``output.dir``)."""
    recipe = loaded.recipe
    _check_launch(recipe)
    run_dir = Path(recipe.output.dir)
    if (run_dir / "manifest.json").exists() and not recipe.output.overwrite:
        raise UserError(
            f"output.dir {run_dir} already holds a finished run; choose another "
            "(output.dir=...) or allow it with output.overwrite=true"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "recipe.yaml").write_text(loaded.to_yaml())
    if recipe.method.name == "sft":
        from tune.methods.sft import train_sft

        return train_sft(recipe, run_dir)
    if recipe.method.name == "dpo":
        from tune.methods.dpo import train_dpo

        return train_dpo(recipe, run_dir)
    raise UserError(f"method.name: `{recipe.method.name}` is not implemented yet")


def _check_launch(recipe) -> None:
    wanted = recipe.launch.nodes * recipe.launch.processes_per_node
    started = int(os.environ.get("WORLD_SIZE", "1"))
    if wanted != started:
        raise UserError(
            f"launch: the recipe asks for {recipe.launch.nodes} node(s) x {recipe.launch.processes_per_node} "
            f"process(es) but this process was started as {started}; start it with torchrun/accelerate "
            f"with {wanted} processes, or set launch.nodes=1 launch.processes_per_node=1 for one process"
        )
