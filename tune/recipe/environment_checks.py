"""What `tune validate` and `tune run` check of the machine they run on, without torch or the model.

Not part of ``load_recipe`` (which judges the recipe alone, wherever it is read: `tune data
preview`, tests), but run by both verbs right after it (tune.cli), each problem at the key to fix:

- ``logging.report_to``: each tracker's package must be importable here (found with
  importlib.util.find_spec, nothing imported): otherwise transformers refuses only after the data
  is prepared and the model loaded. tensorboard takes `tensorboard` or `tensorboardX`, as
  transformers does.
- ``output.dir``: must be a folder that can be created and written: not a file, not under a file,
  and the folder itself (when it exists) or its nearest existing parent writable by this process:
  the permission bits, then an empty probe folder created there and removed at once (nothing
  stays behind; it also finds read-only file systems and full quotas).

What depends on the machine that will train (GPU, kernels, precision) is not checked here: `tune
validate` often runs on a login node; tune.models.machine_checks checks it at run start.

Why, with the cases each check comes from: docs/validation.md
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tune.config.loaded_recipe import LoadedRecipe
from tune.config.positions import Position, PositionMap
from tune.config.problems import Problem, RecipeError, reading_order

# Tracker name (logging.report_to) -> the modules any one of which transformers can report through.
TRACKER_MODULES = {
    "tensorboard": ("tensorboard", "tensorboardX"),
    "wandb": ("wandb",),
    "mlflow": ("mlflow",),
    "trackio": ("trackio",),
}


def check_environment(loaded: LoadedRecipe, more: Iterable[Problem] = ()) -> None:
    """Refuse (one RecipeError, every problem at its key, in reading order) what this machine
    cannot give the recipe (module docstring), together with the caller's ``more`` problems."""
    problems = list(more) + environment_problems(loaded)
    if problems:
        raise RecipeError(reading_order(problems, str(loaded.source_path) if loaded.positions is None else loaded.positions.root.source))


def environment_problems(loaded: LoadedRecipe) -> list[Problem]:
    """The problems of the module docstring: trackers not importable, an `output.dir` that cannot hold a run."""
    positions = loaded.positions or PositionMap(Position(str(loaded.source_path)))
    problems = tracker_problems(loaded.recipe.logging.report_to, positions)
    output = output_dir_problem(Path(loaded.recipe.output.dir), positions)
    if output is not None:
        problems.append(output)
    return problems


def tracker_problems(report_to: list[str], positions: PositionMap) -> list[Problem]:
    """A problem per tracker in ``report_to`` whose package cannot be imported here."""
    problems = []
    for index, tracker in enumerate(report_to):
        modules = TRACKER_MODULES.get(tracker, (tracker,))
        if not any(_findable(module) for module in modules):
            key = f"logging.report_to.{index}"
            problems.append(Problem(positions.value(key), key, f"the {tracker} package is not installed in this Python environment",
                                    f"`pip install {tracker}` here, or drop {tracker} from logging.report_to"))
    return problems


def output_dir_problem(out: Path, positions: PositionMap) -> Problem | None:
    """Why ``out`` cannot hold a run folder (a file, under a file, not writable), else None.

    Nothing stays behind: the only thing created is the probe folder, removed at once."""
    where = positions.value("output.dir")
    default = "" if "output.dir" in positions.values else " (the default, under the current folder)"
    if os.path.lexists(out) and not os.path.isdir(out):
        return Problem(where, "output.dir", f"{out}{default} {_not_a_folder(out)}", "a folder (new, or a run folder) for the run's outputs")
    existing = out
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not os.path.isdir(existing):
        return Problem(where, "output.dir", f"{out}{default} lies under {existing}, which {_not_a_folder(existing)}",
                       "a folder path whose parents are folders")
    refusal = _write_refusal(existing)
    if refusal is not None:
        what = (f"{out}{default} is not writable ({refusal})" if existing == out
                else f"{out}{default} cannot be created: {existing} is not writable ({refusal})")
        return Problem(where, "output.dir", what, "a folder you can write to (output.dir=...)")
    return None


def _write_refusal(folder: Path) -> str | None:
    """Why this process cannot create entries in ``folder``, else None: the permission bits first,
    then a probe (an empty folder created and removed at once), which also finds a read-only
    file system, a full quota, and permissions the bits do not show (root, ACLs)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied for this user"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".tune-write-check-", dir=folder))
    except OSError as err:
        return err.strerror or type(err).__name__
    return None


def _not_a_folder(path: Path) -> str:
    return "is a file, not a folder" if os.path.isfile(path) else "exists and is not a folder"


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install, or a module whose __spec__ is unset
        return False
