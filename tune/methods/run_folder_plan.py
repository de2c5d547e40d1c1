"""What `tune run` does with its `output.dir`: start a run, continue one, start over, or refuse.

``plan_run_folder`` reads the folder (nothing is written) and decides:

    missing, or empty                          start: a new run
    not empty, not a tune run folder           refused: tune writes only into its own folders (the
                                               marker, tune.training.folder_lease)
    `output.overwrite: true`                   start over: the earlier run's checkpoints and outputs
                                               are removed, and said so
    a finished run (manifest.json)             refused (output.overwrite=true, or another folder)
    interrupted, no complete checkpoint        start over there (nothing can be continued), said so
    interrupted, `train.resume: false`         refused (output.overwrite=true starts over)
    interrupted, recipe unreadable             refused: nothing tells what the checkpoint continues
    interrupted, recipe differs                refused, one problem per key that must not change
                                               (tune.training.resume_check), with both values
    interrupted, recipe continues it           resume from the latest complete checkpoint; the
                                               changes that are allowed are printed

`tune run` plans once before anything loads (so these refusals cost a second), then again under
the folder's lease, where the plan is final, and ``prepare_run_folder`` carries it out: the marker
written first, what a start-over removes, incomplete checkpoints removed, the recipe recorded
(`recipe.yaml`: at a start, and when a resume changed allowed keys; never with
`output.overwrite: true` in it, LoadedRecipe.recorded).

``continue_default_run``: when the recipe did not write `output.dir` (the default is a new
`runs/<recipe stem>-<date-time>`), the same command continues the newest run under `runs/` that
it can continue: a tune run folder with no manifest, no live lease, and a recorded recipe equal in
every key that must not change. It says which, and otherwise names the newest interrupted run of the
same recipe name it did not continue, and why.

``continue_command``: the exact command that continues a run, printed by every interruption message.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tune.config.loaded_recipe import LoadedRecipe
from tune.config.problems import RecipeError
from tune.errors import UserError
from tune.training.resume import checkpoint_folders, checkpoint_step, is_complete, mark_complete, whole_without_marker
from tune.training.resume_check import RECORD, Change, UnreadableRecord, read_record, refusal_problems, verdict
from tune.training.folder_lease import LEASE, MARKER, is_run_folder, lease_verdict, mark_run_folder, marker_created

START, RESUME, START_OVER = "start", "resume", "start over"
# What a run writes into its folder (besides the marker and the lease): what starting over removes.
RUN_OUTPUTS = ("manifest.json", "final", "training_curve.svg", "checkpoints", "metrics.jsonl", RECORD)


@dataclass
class FolderPlan:
    """What `tune run` does with ``run_dir`` (module docstring): ``action`` (START, RESUME or
    START_OVER), the ``checkpoint`` it resumes from, the ``allowed`` changes of a resume, ``why`` in
    words, and whether the folder is a run of tune from before the marker (``legacy``)."""

    run_dir: Path
    action: str
    checkpoint: Path | None = None
    allowed: list[Change] = field(default_factory=list)
    why: str = ""
    legacy: bool = False


# What `tune launch` writes into a run folder before the job's first `tune run` (tune.launch.job_scripts
# JOB_FOLDER: the job script, the frozen recipe, the logs); never removed by a start-over.
LAUNCH_FOLDER = "job"


def own_files(name: str) -> bool:
    """Whether ``name`` is the marker, the lease, one of their files written aside, or the folder of a
    job `tune launch` wrote (LAUNCH_FOLDER): none of these makes a folder hold a run."""
    return name == LAUNCH_FOLDER or any(name == f or name.startswith(f".{f}.") for f in (MARKER, LEASE))


def complete_checkpoints(run_dir: Path, legacy: bool) -> list[Path]:
    """The complete checkpoints of ``run_dir``, by step (in a folder of tune from before the completion
    marker: those whose trainer state is whole, tune.training.resume.whole_without_marker)."""
    rule = whole_without_marker if legacy else is_complete
    return [p for p in checkpoint_folders(run_dir) if rule(p)]


def plan_run_folder(run_dir: Path, loaded: LoadedRecipe) -> FolderPlan:
    """Decide what `tune run` does with ``run_dir`` for ``loaded`` (module docstring); reads only.
    Refuses with a UserError (a RecipeError listing the keys, for a recipe that differs)."""
    run_dir = Path(run_dir)
    recipe = loaded.recipe
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"output.dir {run_dir} is a file, not a folder; choose another output.dir")
    entries = sorted(p.name for p in run_dir.iterdir() if not own_files(p.name)) if run_dir.is_dir() else []
    if not entries:
        return FolderPlan(run_dir, START, why=f"new run in {run_dir}")
    if not is_run_folder(run_dir):
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise UserError(f"output.dir {run_dir} is not empty ({shown}) and is not a tune run folder (it has no "
                        f"{MARKER}); tune writes only into new folders and its own: choose another output.dir")
    legacy = not (run_dir / MARKER).is_file()
    finished = (run_dir / "manifest.json").exists()
    checkpoints = complete_checkpoints(run_dir, legacy)
    if recipe.output.overwrite:
        earlier = "finished run" if finished else f"interrupted run ({_at(checkpoints)})"
        return FolderPlan(run_dir, START_OVER, why=f"output.overwrite=true: starting over in {run_dir}, removing "
                          f"the earlier {earlier}", legacy=legacy)
    if finished:
        raise UserError(f"output.dir {run_dir} already holds a finished run (its manifest.json); choose another "
                        "(output.dir=...) or start over there with output.overwrite=true")
    if not checkpoints:
        return FolderPlan(run_dir, START_OVER, why=f"{run_dir} holds a run interrupted before its first complete "
                          "checkpoint: starting it over there", legacy=legacy)
    latest = checkpoints[-1]
    if not recipe.train.resume:
        raise UserError(f"output.dir {run_dir} holds an interrupted run ({_at(checkpoints)}) and train.resume is "
                        "false: set output.overwrite=true to remove it and start over, or drop train.resume=false "
                        "to continue it")
    try:
        recorded = read_record(run_dir)
    except UnreadableRecord as exc:
        recorded, reason = None, str(exc)
    else:
        reason = f"{run_dir / RECORD} is missing"
    if recorded is None:
        raise UserError(f"output.dir {run_dir} holds an interrupted run ({_at(checkpoints)}) but {reason}, so "
                        "nothing tells what that checkpoint continues; set output.overwrite=true to start over, "
                        "or choose another output.dir")
    result = verdict(recorded, loaded.recorded().to_dict(), checkpoint_step(latest))
    if not result.continues:
        raise RecipeError(refusal_problems(result, run_dir, latest.name, loaded.positions, loaded.source_path))
    return FolderPlan(run_dir, RESUME, latest, result.allowed, f"resuming the interrupted run in {run_dir} from "
                      f"{latest.name}", legacy)


def prepare_run_folder(plan: FolderPlan, loaded: LoadedRecipe, printer=print) -> None:
    """Carry out ``plan`` (call it holding the folder's lease): the marker first, then what a start
    over removes or the incomplete checkpoints a resume leaves behind, then the recorded recipe."""
    run_dir = plan.run_dir
    if plan.legacy and plan.action == RESUME:  # a run of tune from before the markers: its whole checkpoints count
        for checkpoint in complete_checkpoints(run_dir, legacy=True):
            if not is_complete(checkpoint):
                mark_complete(checkpoint)
    mark_run_folder(run_dir)
    printer(f"run folder: {plan.why}")
    if plan.action == START_OVER:
        removed = [name for name in RUN_OUTPUTS if (run_dir / name).exists()]
        for name in removed:
            path = run_dir / name
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        if removed:
            printer(f"run folder: removed {', '.join(removed)}")
    elif plan.action == RESUME:
        torn = [p for p in checkpoint_folders(run_dir) if not is_complete(p)]
        for path in torn:
            shutil.rmtree(path)
        if torn:
            printer(f"run folder: removed incomplete checkpoint(s) {', '.join(p.name for p in torn)} (a save cut "
                    "short: no completion marker)")
        if plan.allowed:
            printer("run folder: changed on resume (allowed: the run continues exactly): "
                    + "; ".join(change.describe() for change in plan.allowed))
    if plan.action != RESUME or plan.allowed:
        record_recipe(run_dir, loaded)


def record_recipe(run_dir: Path, loaded: LoadedRecipe) -> None:
    """Write the recipe the run folder records (`recipe.yaml`), atomically."""
    from tune.training.folder_lease import replace_atomically

    replace_atomically(Path(run_dir) / RECORD, loaded.recorded().to_yaml())


def continue_default_run(loaded: LoadedRecipe, printer=print) -> LoadedRecipe:
    """``loaded`` writing into the run it continues, when it did not write `output.dir` and such a run
    exists under the default folder's parent (module docstring); else ``loaded`` as it is."""
    recipe = loaded.recipe
    if loaded.output_dir_given or recipe.output.overwrite or not recipe.train.resume:
        return loaded
    new_dir = Path(recipe.output.dir)
    runs = new_dir.parent
    if not runs.is_dir():
        return loaded
    folders = [p for p in runs.iterdir() if p.is_dir() and p != new_dir and is_run_folder(p)]
    missed = None
    for folder in sorted(folders, key=marker_created, reverse=True):
        reason = why_not_continued(folder, loaded)
        if reason is None:
            printer(f"run folder: continuing the interrupted run in {folder} (same recipe, output.dir not given; "
                    f"for a new run give output.dir=...)")
            return loaded.with_output_dir(folder)
        if missed is None and reason and folder.name.startswith(f"{loaded.source_path.stem}-"):
            missed = (folder, reason)
    if missed is not None:
        printer(f"run folder: not continuing the interrupted run in {missed[0]}: {missed[1]}; a new run starts in "
                f"{new_dir}")
    return loaded


def why_not_continued(folder: Path, loaded: LoadedRecipe) -> str | None:
    """Why ``loaded`` would not continue the run in ``folder`` (None: it would); an empty text for a
    finished run (not worth a note)."""
    if (folder / "manifest.json").exists():
        return ""
    lease = lease_verdict(folder)
    if lease is not None and not lease.takeover:
        return f"it is in use ({lease.text})"
    try:
        recorded = read_record(folder)
    except UnreadableRecord as exc:
        return str(exc)
    if recorded is None:
        return f"it has no {RECORD}"
    checkpoints = complete_checkpoints(folder, legacy=not (folder / MARKER).is_file())
    step = checkpoint_step(checkpoints[-1]) if checkpoints else None
    result = verdict(recorded, loaded.with_output_dir(folder).recorded().to_dict(), step)
    if not result.continues:
        return "its recipe differs in " + ", ".join(change.describe() for change, _ in result.refused)
    return None


def continue_command(loaded: LoadedRecipe, run_dir: Path) -> str:
    """The command that continues the run in ``run_dir`` exactly: `tune run` on its recorded recipe."""
    command = f"tune run {shlex.quote(str(Path(run_dir) / RECORD))}"
    if loaded.recipe.model.trust_remote_code:
        command += " --trust-remote-code"
    launch = loaded.recipe.launch
    if launch.nodes * launch.processes_per_node > 1:
        command += (f"  (launched as this run was: {launch.nodes} node(s) x {launch.processes_per_node} "
                    "process(es))")
    return command


def _at(checkpoints: list[Path]) -> str:
    return f"last complete checkpoint {checkpoints[-1].name}" if checkpoints else "no complete checkpoint"
