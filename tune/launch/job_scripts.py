"""Job scripts for PBS Professional (ABCI 3.0) and SLURM: what `tune launch pbs|slurm` writes.

``write_job(loaded, request)`` writes, into the run folder (`output.dir`) of the resolved recipe
``loaded``, a folder ``job/``:

    job/recipe.yaml   the recipe frozen: resolved (no ``base:``), `output.dir` pinned to this folder,
                      `output.overwrite` false (LoadedRecipe.recorded). A job waits in a queue for
                      days; the recipe file may change meanwhile, the job still trains what was
                      launched, and a resubmitted job finds its own folder and continues its run.
    job/pbs.sh        (or slurm.sh) the job script, from ``scripts/pbs-job.sh`` / ``slurm-job.sh``
    job/node.sh       what the launcher starts once per node (``scripts/node.sh``): torchrun with the
                      node's rank, `launch.processes_per_node` tune processes running
                      `tune run job/recipe.yaml` (and ``--trust-remote-code`` when it was given here)
    job/common.sh     the shell functions both job scripts share (``scripts/job-common.sh``): the save
                      timer, forwarding the save signal, the job's outcome, resubmission
    job/logs/         one log per job id; job/status/<job id>/rank-N: each tune process's exit status

How a job runs (PBS; SLURM alike with srun and scontrol): `cd $PBS_O_WORKDIR`, the modules loaded
(ABCI 3.0's cuda, cudnn, hpcx, nccl by default), MASTER_ADDR the first host of `$PBS_NODEFILE`, one
launcher per node (``mpirun -np NODES --hostfile $PBS_NODEFILE --map-by slot``: one slot per line,
one line per node on ABCI) starting node.sh, whose torchrun meets the others by static rendezvous
bounded by `launch.timeout_minutes` (``--rdzv-conf timeout``). The save signal (SIGUSR1; the recipe's
`launch.preempt_signals` must hold it) reaches every tune process ``save_before_s`` before the
walltime: on PBS from a timer in the script (PBS itself warns with SIGTERM only shortly before it
kills), on SLURM from ``--signal=B:USR1@N``; torchrun forwards it (``--signals-to-handle``) and waits
up to ``save_before_s`` (``--shutdown-timeout``) for the processes to save. Every tune process records
its exit status (tune.cli, ``TUNE_EXIT_STATUS_DIR``); the job is "preempted" when rank 0 recorded 75
and no rank anything else, and then resubmits itself (``qsub`` / ``sbatch``, at most
``max_resubmits`` times in a chain, counted in ``TUNE_RESUBMITS``). Job exit status: 0 finished, 75
preempted, anything else failed.

Refused (exit 2) before anything is written: a walltime not HH:MM:SS, a save lead not shorter than
the walltime, PBS without a group, more processes per node than an
ABCI resource type has GPUs (rt_HF 8, rt_HG 1), a recipe whose `launch.preempt_signals` lacks SIGUSR1,
and a run folder that already holds a job (submit that one again to continue its run) or a finished
run. Rationale and the ABCI specifics: docs/clusters.md.
"""

from __future__ import annotations

import math
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tune.config.loaded_recipe import LoadedRecipe
from tune.config.positions import Position
from tune.config.problems import Problem, RecipeError
from tune.errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parents[1]
JOB_FOLDER = "job"
SCHEDULERS = ("pbs", "slurm")
SUBMIT = {"pbs": "qsub", "slurm": "sbatch"}
TEMPLATES = {"pbs": "pbs-job.sh", "slurm": "slurm-job.sh"}
SAVE_SIGNAL = "SIGUSR1"
# Signals torchrun handles by default; the recipe's preempt signals are added (torchrun forwards them).
TORCHRUN_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")
# ABCI 3.0 (docs/clusters.md, shared/docs/llmjp4.md): resource types and their GPUs, the modules LLM-jp loads.
ABCI_GPUS = {"rt_HF": 8, "rt_HG": 1, "rt_HC": 0}
ABCI_DEFAULT_QUEUE = "rt_HF"
ABCI_MODULES = ("cuda/12.6/12.6.1", "cudnn/9.5/9.5.1", "hpcx/2.20", "nccl/2.25/2.25.1-1")
DEFAULT_SAVE_BEFORE_S = 900
DEFAULT_MAX_RESUBMITS = 3
PLACEHOLDER = re.compile(r"@@([A-Z_]+)@@")


def scripts_dir() -> Path:
    """The folder of the job templates: the repository's ``scripts/`` in a checkout or an editable
    install, ``tune/_shipped/scripts`` in a wheel (pyproject force-includes it there)."""
    checkout = PACKAGE_DIR.parent / "scripts"
    if (checkout / "node.sh").is_file():
        return checkout
    return PACKAGE_DIR / "_shipped" / "scripts"


def parse_walltime(text: str, option: str = "--walltime") -> int:
    """Seconds of a walltime written HH:MM:SS (hours may pass 24; minutes and seconds below 60)."""
    match = re.fullmatch(r"(\d+):([0-5]\d):([0-5]\d)", text.strip())
    if not match or not any(int(part) for part in match.groups()):
        raise UserError(f"{option} {text!r}: expected a duration HH:MM:SS longer than zero, like 24:00:00")
    hours, minutes, seconds = (int(part) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def format_walltime(seconds: int) -> str:
    """``seconds`` as HH:MM:SS."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@dataclass(frozen=True)
class JobRequest:
    """What `tune launch` was asked for besides the recipe.

    ``scheduler`` pbs or slurm; ``walltime_s`` the job's time limit; ``group`` the PBS project
    (``-P``, required) or the SLURM account (optional); ``queue`` the PBS queue, which on ABCI is the
    resource type (default rt_HF), or the SLURM partition; ``reservation`` a reservation (PBS: the job
    goes to it with ``-q`` and ``queue`` names its resource type, default rt_HF; SLURM: with the partition); ``save_before_s`` how long before
    the walltime the save signal comes; ``max_resubmits`` how many times a preempted job resubmits
    itself in a chain; ``trust_remote_code`` carried to `tune run`; ``modules`` loaded by the job
    (None: ABCI 3.0's for PBS, none for SLURM); ``python`` the interpreter the nodes run tune with
    (this one: its environment must be on a file system the nodes share)."""

    scheduler: str
    walltime_s: int
    group: str | None = None
    queue: str | None = None
    reservation: str | None = None
    save_before_s: int = DEFAULT_SAVE_BEFORE_S
    max_resubmits: int = DEFAULT_MAX_RESUBMITS
    trust_remote_code: bool = False
    modules: tuple[str, ...] | None = None
    python: str = field(default_factory=lambda: sys.executable)


@dataclass(frozen=True)
class JobFiles:
    """What ``write_job`` wrote: the run folder, its job folder, the job script and the frozen recipe."""

    scheduler: str
    run_dir: Path
    script: Path
    recipe: Path

    @property
    def job_dir(self) -> Path:
        return self.script.parent

    def submit_command(self) -> list[str]:
        """The command that submits the job (``qsub SCRIPT`` / ``sbatch SCRIPT``)."""
        return [SUBMIT[self.scheduler], str(self.script)]


def check_request(loaded: LoadedRecipe, request: JobRequest) -> None:
    """Refuse (UserError; RecipeError for the recipe's own keys) what the job could not run (module docstring)."""
    if request.scheduler not in SCHEDULERS:
        raise UserError(f"unknown scheduler {request.scheduler!r}; expected one of: {', '.join(SCHEDULERS)}")
    if request.save_before_s <= 0 or request.save_before_s >= request.walltime_s:
        raise UserError(f"--save-before {request.save_before_s / 60:g} minutes: must be more than 0 and less than the "
                        f"walltime ({format_walltime(request.walltime_s)}): the run needs that long to finish its step "
                        "and save a checkpoint before the scheduler kills it")
    if request.max_resubmits < 0:
        raise UserError(f"--max-resubmits {request.max_resubmits}: must be 0 (never resubmit) or more")
    if request.scheduler == "pbs" and not request.group:
        raise UserError("tune launch pbs needs --group GROUP: the ABCI group the job is charged to (qsub -P)")
    recipe = loaded.recipe
    positions = loaded.positions
    where = positions.value if positions is not None else (lambda key: Position(str(loaded.source_path)))
    problems = []
    if SAVE_SIGNAL not in recipe.launch.preempt_signals:
        problems.append(Problem(
            where("launch.preempt_signals"), "launch.preempt_signals",
            f"{recipe.launch.preempt_signals} lacks {SAVE_SIGNAL}, the signal tune's job scripts send every process "
            "before the walltime to save a checkpoint", f"a list holding {SAVE_SIGNAL} (the default is [SIGTERM, SIGUSR1])"))
    rtype = resource_type(request)
    gpus = ABCI_GPUS.get(rtype) if request.scheduler == "pbs" else None
    if gpus and recipe.launch.processes_per_node > gpus:
        problems.append(Problem(
            where("launch.processes_per_node"), "launch.processes_per_node",
            f"{recipe.launch.processes_per_node} processes per node, but an ABCI {rtype} node has {gpus} GPU(s)",
            f"at most {gpus} (one process per GPU), or another resource type"))
    if problems:
        raise RecipeError(problems)


def resource_type(request: JobRequest) -> str:
    """The ABCI resource type of a PBS job: its queue, rt_HF by default (also with a reservation)."""
    return request.queue or ABCI_DEFAULT_QUEUE


def job_script_name(scheduler: str) -> str:
    return f"{scheduler}.sh"


def existing_job(run_dir: Path) -> Path | None:
    """The job script already written into ``run_dir`` (either scheduler), if any."""
    for scheduler in SCHEDULERS:
        script = Path(run_dir) / JOB_FOLDER / job_script_name(scheduler)
        if script.exists():
            return script
    return None


def write_job(loaded: LoadedRecipe, request: JobRequest) -> JobFiles:
    """Write the job folder into the run folder of ``loaded`` (module docstring); returns what it wrote.

    The run folder must be new, empty or a tune run folder (the caller marks it, tune.cli); a job
    folder already there is refused (submit that job again to continue its run)."""
    check_request(loaded, request)
    run_dir = Path(loaded.recipe.output.dir).resolve()
    earlier = existing_job(run_dir)
    if earlier is not None:
        raise UserError(f"{run_dir} already holds a job ({earlier}); to continue that run submit it again "
                        f"({SUBMIT[earlier.stem]} {shlex.quote(str(earlier))}), or choose another output.dir")
    job_dir = run_dir / JOB_FOLDER
    (job_dir / "logs").mkdir(parents=True)
    frozen = loaded.with_output_dir(run_dir).recorded()
    recipe_path = job_dir / "recipe.yaml"
    recipe_path.write_text(frozen.to_yaml(), encoding="utf-8")
    values = script_values(frozen, request, run_dir, recipe_path)
    script = job_dir / job_script_name(request.scheduler)
    for name, text in ((script.name, render(TEMPLATES[request.scheduler], values)),
                       ("node.sh", render("node.sh", values)),
                       ("common.sh", render("job-common.sh", values))):
        path = job_dir / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755)
    return JobFiles(request.scheduler, run_dir, script, recipe_path)


def script_values(loaded: LoadedRecipe, request: JobRequest, run_dir: Path, recipe_path: Path) -> dict[str, str]:
    """The values of the templates' ``@@NAME@@`` placeholders (shell-quoted where they are words)."""
    recipe = loaded.recipe
    launch = recipe.launch
    signals = list(TORCHRUN_SIGNALS) + [s for s in launch.preempt_signals if s not in TORCHRUN_SIGNALS]
    modules = request.modules if request.modules is not None else (ABCI_MODULES if request.scheduler == "pbs" else ())
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", f"tune-{run_dir.name}")[:60]
    walltime = format_walltime(request.walltime_s)
    values = {
        "DESCRIPTION": f"tune job: {recipe.description or loaded.source_path.name}".replace("\n", " "),
        "SCRIPT": shlex.quote(str(run_dir / JOB_FOLDER / job_script_name(request.scheduler))),
        "RUN_DIR": shlex.quote(str(run_dir)),
        "RECIPE": shlex.quote(str(recipe_path)),
        "TRUST_REMOTE_CODE": " --trust-remote-code" if request.trust_remote_code else "",
        "PYTHON": shlex.quote(request.python),
        "NODES": str(launch.nodes),
        "PROCESSES_PER_NODE": str(launch.processes_per_node),
        "RENDEZVOUS_TIMEOUT_S": str(max(1, math.ceil(launch.timeout_minutes * 60))),
        "SIGNALS": ",".join(signals),
        "SHUTDOWN_TIMEOUT_S": str(request.save_before_s),
        "SAVE_BEFORE_S": str(request.save_before_s),
        "WALLTIME": walltime,
        "WALLTIME_S": str(request.walltime_s),
        "MAX_RESUBMITS": str(request.max_resubmits),
        "JOB_NAME": name,
        "MODULE_LOADS": "module load " + " ".join(shlex.quote(m) for m in modules) if modules else "# (no modules)",
    }
    if request.scheduler == "pbs":
        values.update(GROUP=shlex.quote(request.group or ""), QUEUE=shlex.quote(request.reservation or resource_type(request)),
                      PBS_VARIABLES=f"RTYPE={resource_type(request)}")
    else:
        options = [f"#SBATCH --account={request.group}" if request.group else "",
                   f"#SBATCH --partition={request.queue}" if request.queue else "",
                   f"#SBATCH --reservation={request.reservation}" if request.reservation else ""]
        values["SBATCH_OPTIONS"] = "\n".join(o for o in options if o) or "# (no account, partition or reservation given)"
    return values


def render(template: str, values: dict[str, str]) -> str:
    """Template ``template`` of scripts_dir() with every ``@@NAME@@`` replaced; a name without a value
    is a bug in tune (KeyError), never a script with a hole in it."""
    text = (scripts_dir() / template).read_text(encoding="utf-8")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)
