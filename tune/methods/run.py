"""`tune run`: locate the checkpoint, prepare the run folder, then hand the recipe to its method.

The method comes from the METHODS table (tune.config.methods): its training function is imported
only now, by its dotted path. The checkpoint is located first, before torch, TRL or peft are
imported: a `model.path` without a checkpoint, or a hub id while the hub is unreachable, fails in
about a second instead of after the ~9 s those imports take.

The run folder (``output.dir``) then receives ``recipe.yaml`` (the fully resolved recipe, which
``tune run`` reproduces the run from) before anything heavy loads, then the method's outputs:
``metrics.jsonl``, ``manifest.json`` and ``final/``.

Refuses (UserError) to write into a folder that already holds a finished run unless
``output.overwrite`` is true, and a multi-process `launch` section when the process was not
started by a distributed launcher with that many processes.
"""

from __future__ import annotations

import os
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from tune.config.loaded_recipe import LoadedRecipe
from tune.config.methods import METHODS
from tune.config.schema import Recipe
from tune.errors import UserError

if TYPE_CHECKING:
    from tune.methods.run_records import RunResult


def run_recipe(loaded: LoadedRecipe) -> RunResult:
    """Train ``loaded.recipe``; returns the method's RunResult (its manifest is also in ``output.dir``)."""
    from tune.models.checkpoints import locate_checkpoint

    recipe = loaded.recipe
    _check_launch(recipe)
    run_dir = Path(recipe.output.dir)
    if (run_dir / "manifest.json").exists() and not recipe.output.overwrite:
        raise UserError(
            f"output.dir {run_dir} already holds a finished run; choose another "
            "(output.dir=...) or allow it with output.overwrite=true"
        )
    checkpoint = locate_checkpoint(recipe.model)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "recipe.yaml").write_text(loaded.to_yaml())
    module, function = METHODS[recipe.method.name].train.split(":")
    train = getattr(import_module(module), function)
    return train(recipe, run_dir, checkpoint)


def _check_launch(recipe: Recipe) -> None:
    wanted = recipe.launch.nodes * recipe.launch.processes_per_node
    started = int(os.environ.get("WORLD_SIZE", "1"))
    if wanted != started:
        raise UserError(
            f"launch: the recipe asks for {recipe.launch.nodes} node(s) x {recipe.launch.processes_per_node} "
            f"process(es) but this process was started as {started}; start it with torchrun/accelerate "
            f"with {wanted} processes, or set launch.nodes=1 launch.processes_per_node=1 for one process"
        )
