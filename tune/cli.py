"""The ``tune`` command: verbs, arguments, exit codes and error printing.

Verbs: ``run`` (train a recipe), ``validate`` (print the resolved recipe), ``ls`` (list the
shipped recipes), ``cp`` (copy a shipped recipe to edit it), ``data`` (dataset cards and
mixtures), ``merge`` (export a finished run as one standalone model with a model card),
``chat`` (talk to a tuned model), ``plan`` (memory, steps and time of a recipe on a named GPU),
``launch`` (write a PBS or SLURM job for a recipe's topology). Exit status: 0 on success, 2 for a
user mistake (a bad recipe, a wrong argument: the problem is printed, never a traceback), 75
(``EXIT_PREEMPTED``, EX_TEMPFAIL) when a run stopped on a preemption signal after saving a complete
checkpoint (tune.errors.Preempted: the same command continues it), 130 on Ctrl-C. Any other exception
is a bug in tune and keeps its traceback.

Under a job (``TUNE_EXIT_STATUS_DIR`` set, by tune's job scripts: tune.launch.job_scripts) every process
also writes its exit status into ``$TUNE_EXIT_STATUS_DIR/rank-<RANK>`` as it ends (1 for a bug's
traceback), so the job tells "preempted: resubmit" from "failed" through launchers (torchrun, mpirun)
that report only their own status.

Only argparse is imported at the top: ``tune --help`` and ``tune validate`` never import torch
or the Hugging Face stack; each verb imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tune.errors import Preempted, UserError

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130
EXIT_PREEMPTED = 75  # tune.errors.Preempted.exit_status: a complete checkpoint saved; the same command continues
EXIT_STATUS_DIR = "TUNE_EXIT_STATUS_DIR"


def cmd_run(args: argparse.Namespace) -> int:
    """Validate the recipe (as ``validate`` does, this machine's trackers and `output.dir` included),
    then train it with ``tune.methods.run.run_recipe``.

    Refuses (exit 2), before anything loads, a recipe with `model.trust_remote_code: true` unless
    the person allowed it: ``--trust-remote-code`` or ``TUNE_TRUST_REMOTE_CODE=1``
    (tune.config.remote_code). ``--break-lock`` goes to run_recipe as ``break_lock``."""
    from tune.config.remote_code import consent_given, remote_code_problem
    from tune.recipe import load_recipe
    from tune.recipe.environment_checks import check_environment

    loaded = load_recipe(args.recipe, args.overrides)
    remote = remote_code_problem(loaded, consent_given(args.trust_remote_code))
    check_environment(loaded, [remote] if remote else [])
    from tune.methods.run import run_recipe

    run_recipe(loaded, break_lock=args.break_lock)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    """Print the fully resolved recipe (YAML, or one JSON object with ``--json``) on stdout, and
    what it will do (LoRA targets and counts, memory, kernels, remote code, the checks deferred to
    the training machine: tune.plan) on stderr. Refuses (exit 2) what ``load_recipe`` refuses, and
    trackers not installed here or an `output.dir` that cannot be written
    (tune.recipe.environment_checks)."""
    from tune.plan import plan_lines
    from tune.recipe import load_recipe
    from tune.recipe.environment_checks import check_environment

    loaded = load_recipe(args.recipe, args.overrides)
    check_environment(loaded)
    sys.stdout.write(loaded.to_json() + "\n" if args.json else loaded.to_yaml())
    for line in plan_lines(loaded.recipe, loaded.positions):  # stderr: stdout stays one loadable recipe
        print(f"plan: {line}", file=sys.stderr)
    return EXIT_OK


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse reports anything else with exit 2)."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _fraction(text: str) -> float:
    """argparse type: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value} must be in (0, 1], e.g. 0.35")
    return value


def cmd_plan(args: argparse.Namespace) -> int:
    """Print what the recipe needs (tune.plan.plan_report): parameters, memory per GPU by part, tokens
    per step, steps and wall time on ``--gpu`` (H200 by default), and whether it fits; one JSON object
    with ``--json``. No torch import."""
    from tune.plan import plan_report
    from tune.recipe import load_recipe

    loaded = load_recipe(args.recipe, args.overrides)
    report = plan_report(loaded, gpu=args.gpu, mfu=args.mfu, samples=args.samples, tokens=args.tokens)
    if args.json:
        import json

        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        for line in report.lines():
            print(line)
    return EXIT_OK


def cmd_launch(args: argparse.Namespace) -> int:
    """Write a job for the recipe's topology into its run folder and print the script's path
    (tune.launch.job_scripts); with ``--submit`` also submit it (``qsub`` / ``sbatch``) and print what
    the scheduler answered. ``--nodes N`` is the override ``launch.nodes=N`` (checked like any).

    Refuses (exit 2) what ``tune validate`` refuses, a recipe asking for remote code without
    ``--trust-remote-code`` (carried into the job), what the job could not run
    (job_scripts.check_request), and a run folder that is not new, empty or an interrupted tune run
    whose recipe this one continues (tune.methods.run_folder_plan), and `output.overwrite=true`. The folder is marked a tune run
    (its marker, tune.training.folder_lease) before the job is written into it."""
    from tune.config.remote_code import consent_given, remote_code_problem
    from tune.launch.job_scripts import JobRequest, check_request, parse_walltime, write_job
    from tune.methods.run_folder_plan import plan_run_folder
    from tune.plan import topology_line
    from tune.recipe import load_recipe
    from tune.recipe.environment_checks import check_environment
    from tune.training.folder_lease import mark_run_folder

    overrides = list(args.overrides) + ([f"launch.nodes={args.nodes}"] if args.nodes is not None else [])
    loaded = load_recipe(args.recipe, overrides)
    trust = consent_given(args.trust_remote_code)
    remote = remote_code_problem(loaded, trust)
    check_environment(loaded, [remote] if remote else [])
    if args.save_before <= 0:
        raise UserError(f"--save-before {args.save_before:g}: must be more than 0 minutes")
    request = JobRequest(
        scheduler=args.scheduler, walltime_s=parse_walltime(args.walltime), group=args.group, queue=args.queue,
        reservation=args.reservation, save_before_s=max(1, round(args.save_before * 60)),
        max_resubmits=args.max_resubmits, trust_remote_code=trust and loaded.recipe.model.trust_remote_code,
        modules=None if args.modules is None else tuple(args.modules.split()))
    check_request(loaded, request)
    run_dir = Path(loaded.recipe.output.dir)
    if loaded.recipe.output.overwrite:
        raise UserError("output.overwrite=true: a job never starts over (its resubmissions would wipe the run they "
                        f"continue); remove {run_dir} first, or choose another output.dir")
    plan_run_folder(run_dir, loaded)  # refuses a folder the job could not run in (not tune's, finished, differing)
    mark_run_folder(run_dir)
    files = write_job(loaded, request)
    print(topology_line(loaded.recipe))
    print(f"job script: {files.script}")
    print(f"frozen recipe: {files.recipe}")
    print(f"logs: {files.job_dir / 'logs'}/<job id>.log")
    submit = files.submit_command()
    if not args.submit:
        print(f"submit with: {' '.join(submit)}")
        return EXIT_OK
    import shutil
    import subprocess

    if shutil.which(submit[0]) is None:
        raise UserError(f"--submit: {submit[0]} is not on PATH here; submit from a login node with: {' '.join(submit)}")
    done = subprocess.run(submit, capture_output=True, text=True)
    if done.returncode != 0:
        raise UserError(f"{submit[0]} refused the job (exit status {done.returncode}): "
                        f"{(done.stderr or done.stdout).strip()}; the job script is {files.script}")
    print(f"submitted: {done.stdout.strip()}")
    return EXIT_OK


def cmd_ls(args: argparse.Namespace) -> int:
    """List the shipped recipes with their one-line descriptions (a table on a terminal, plain columns otherwise)."""
    from tune.resources import shipped_recipe_names

    rows = [(name, _description(name)) for name in shipped_recipe_names()]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table("recipe", "description", box=None, header_style="bold")
        for name, description in rows:
            table.add_row(name, description)
        Console().print(table)
    else:
        width = max((len(name) for name, _ in rows), default=0)
        for name, description in rows:
            print(f"{name:<{width}}  {description}")
    return EXIT_OK


def _description(name: str) -> str:
    """The ``description`` of shipped recipe ``name`` (inherited through ``base:``), or why it cannot be read."""
    from tune.config import RecipeError
    from tune.config.bases import load_with_bases
    from tune.resources import shipped_recipe_path

    try:
        tree, _ = load_with_bases(shipped_recipe_path(name))
    except RecipeError as exc:
        return f"(unreadable: {exc.lines()[0]})"
    return str(tree.get("description") or "")


def cmd_cp(args: argparse.Namespace) -> int:
    """Copy shipped recipe ``args.name`` to ``args.dest`` (a file, or an existing folder); never overwrites."""
    from tune.config.copying import portable_text
    from tune.config.problems import closest
    from tune.resources import shipped_recipe_names, shipped_recipe_path

    source = shipped_recipe_path(args.name)
    if source is None:
        names = shipped_recipe_names()
        hint = closest(args.name.removesuffix(".yaml"), names)
        raise UserError(
            f"no shipped recipe named {args.name!r}; expected one of: {', '.join(names)}"
            + (f" (did you mean '{hint}'?)" if hint else "")
        )
    dest = Path(args.dest)
    if dest.is_dir():
        dest = dest / source.name
    if not dest.parent.is_dir():
        raise UserError(f"cannot write {dest}: the folder {dest.parent} does not exist")
    text = portable_text(source)
    try:
        with open(dest, "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise UserError(f"{dest} already exists; not overwriting it (remove it or choose another destination)") from None
    print(f"copied {args.name} to {dest}")
    return EXIT_OK


def cmd_merge(args: argparse.Namespace) -> int:
    """Export the finished run ``args.run_dir`` into ``args.out`` (tune.export.merge)."""
    from tune.export.merge import merge_run

    merge_run(args.run_dir, args.out, base=args.base, dtype=args.dtype)
    return EXIT_OK


def cmd_chat(args: argparse.Namespace) -> int:
    """Answer ``--prompt`` once, or chat in a REPL, with the tuned model in ``args.path`` (tune.export.chat)."""
    if args.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens {args.max_new_tokens}: must be at least 1")
    if args.temperature < 0:
        raise UserError(f"--temperature {args.temperature}: must be 0 (greedy) or more")
    from tune.export.chat import open_session, print_reply, repl

    session = open_session(args.path, base=args.base, system=args.system)
    if args.prompt is not None:
        print_reply(session.reply(args.prompt, args.max_new_tokens, args.temperature), args.show_thinking)
    else:
        repl(session, args.max_new_tokens, args.temperature, args.show_thinking)
    return EXIT_OK


VERBS = {
    "run": (cmd_run, "validate a recipe, then train it"),
    "validate": (cmd_validate, "check a recipe and print it fully resolved"),
    "ls": (cmd_ls, "list the shipped recipes"),
    "cp": (cmd_cp, "copy a shipped recipe to edit it"),
    "data": (None, "dataset cards and the mixture a recipe trains on (ls, show, preview)"),
    "merge": (cmd_merge, "export a finished run as one standalone model (LoRA merged) with a model card"),
    "chat": (cmd_chat, "talk to a tuned model (a run folder or a merged model)"),
    "plan": (cmd_plan, "memory per GPU, steps and wall time of a recipe, and whether it fits (no torch)"),
    "launch": (cmd_launch, "write (and --submit) a PBS (ABCI 3.0) or SLURM job that trains a recipe on its nodes"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: lists the verbs in ``--help`` (each verb parses its own arguments)."""
    parser = argparse.ArgumentParser(
        prog="tune",
        description="Fine-tune LLM-jp-4 models from YAML recipes.",
        epilog="Start with `tune ls`, then `tune cp tiny/sft-lora my.yaml` and `tune run my.yaml`.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND")
    for name, (_, help_text) in VERBS.items():
        verbs.add_parser(name, help=help_text)
    return parser


def build_verb_parser(name: str) -> argparse.ArgumentParser:
    """The parser of verb ``name`` (``parse_verb_args`` parses with it: options may come before,
    between or after ``KEY=VALUE`` overrides)."""
    func, help_text = VERBS[name]
    parser = argparse.ArgumentParser(prog=f"tune {name}", description=help_text)
    if name == "data":
        from tune.cli_data import add_arguments, cmd_data

        add_arguments(parser)
        parser.set_defaults(func=cmd_data)
        return parser
    parser.set_defaults(func=func)
    if name == "launch":
        parser.add_argument("scheduler", choices=("pbs", "slurm"), help="pbs (ABCI 3.0: qsub) or slurm (sbatch)")
    if name in ("run", "validate", "plan", "launch"):
        parser.add_argument("recipe", help="recipe file, or a shipped recipe name such as tiny/sft-lora")
        parser.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE", help="override a recipe key, e.g. train.lr=1e-4")
    if name in ("validate", "plan"):
        parser.add_argument("--json", action="store_true",
                            help="print one JSON object instead of " + ("YAML" if name == "validate" else "lines"))
    if name == "plan":
        parser.add_argument("--gpu", default="H200", help="the GPU to plan for (default H200)")
        parser.add_argument("--samples", type=_positive_int, default=None,
                            help="training samples after preparation, when known (else from an earlier run's data report or the cards)")
        parser.add_argument("--tokens", type=_positive_int, default=None,
                            help="training tokens after preparation, when known (needed for steps with packing)")
        parser.add_argument("--mfu", type=_fraction, default=0.35,
                            help="model FLOPs utilisation the wall time assumes (default 0.35)")
    if name == "launch":
        _add_launch_arguments(parser)
    if name in ("run", "launch"):
        parser.add_argument("--trust-remote-code", action="store_true",
                            help="allow a recipe with model.trust_remote_code: true to run the checkpoint "
                            "repository's Python code (also: TUNE_TRUST_REMOTE_CODE=1; `launch` carries it into the job)")
    if name == "run":
        parser.add_argument("--break-lock", action="store_true",
                            help="take over output.dir even though a lease says another run holds it (only when "
                            "you know that run is gone: the lease names its host and process)")
    if name == "cp":
        parser.add_argument("name", help="shipped recipe name (see `tune ls`), with or without .yaml")
        parser.add_argument("dest", help="destination file, or an existing folder")
    if name == "merge":
        parser.add_argument("run_dir", help="output.dir of a finished `tune run`")
        parser.add_argument("--out", required=True, help="folder to write the model into (new, or empty)")
    if name == "chat":
        parser.add_argument("path", help="output.dir of a finished `tune run`, or a folder written by `tune merge`")
        parser.add_argument("--prompt", help="answer this one message and exit (default: an interactive chat)")
        parser.add_argument("--system", help="a system message (rendered as LLM-jp-4's developer instructions)")
        parser.add_argument("--max-new-tokens", type=int, default=256, help="most tokens per reply (default 256)")
        parser.add_argument("--temperature", type=float, default=0.0, help="sampling temperature; 0 = greedy (default)")
        parser.add_argument("--show-thinking", action="store_true", help="also print the model's analysis channel")
    if name in ("merge", "chat"):
        parser.add_argument("--base", help="local copy of the base checkpoint, when the run's base cannot be found")
    if name == "merge":
        parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                            help="dtype of the saved weights (default auto: the recipe's model.dtype, else the base's own)")
    return parser


def _add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `tune launch pbs|slurm` (tune.launch.job_scripts.JobRequest says what each becomes)."""
    from tune.launch.job_scripts import DEFAULT_MAX_RESUBMITS, DEFAULT_SAVE_BEFORE_S

    parser.add_argument("--walltime", required=True, metavar="HH:MM:SS", help="the job's time limit")
    parser.add_argument("--nodes", type=int, metavar="N", help="machines (the override launch.nodes=N; default: the recipe's)")
    parser.add_argument("--group", metavar="G", help="PBS: the ABCI group charged (qsub -P, required); SLURM: --account")
    parser.add_argument("--queue", metavar="Q", help="PBS: the queue, on ABCI the resource type (default rt_HF; with "
                        "--reservation, the reserved nodes' type); SLURM: the partition")
    parser.add_argument("--reservation", metavar="R", help="run in reservation R (PBS: qsub -q R; SLURM: --reservation)")
    parser.add_argument("--save-before", type=float, default=DEFAULT_SAVE_BEFORE_S / 60, metavar="MINUTES",
                        help="send the save signal this long before the walltime, so every process saves one complete "
                        f"checkpoint and the job resubmits itself (default {DEFAULT_SAVE_BEFORE_S // 60})")
    parser.add_argument("--max-resubmits", type=int, default=DEFAULT_MAX_RESUBMITS, metavar="N",
                        help=f"a preempted job resubmits itself at most N times in a row (default {DEFAULT_MAX_RESUBMITS})")
    parser.add_argument("--modules", metavar="'M1 M2'", help="environment modules the job loads (default: ABCI 3.0's "
                        "cuda, cudnn, hpcx and nccl for pbs, none for slurm; '' for none)")
    parser.add_argument("--submit", action="store_true", help="also submit the job (qsub / sbatch)")


def parse_verb_args(argv: list[str]) -> argparse.Namespace:
    """The arguments of `tune VERB ...` (``argv[0]`` a verb of ``VERBS``), its handler in `func`.

    Every verb's options may come before, between or after its positionals, so a recipe's
    KEY=VALUE overrides go anywhere on the line (`tune validate R --json k=v`, `tune data preview
    R -n 10 k=v`). Raises SystemExit as argparse does: help printed, or a usage error."""
    verb_parser = build_verb_parser(argv[0])
    if argv[0] == "data":
        from tune.cli_data import parse_args

        return parse_args(verb_parser, argv[1:])
    return verb_parser.parse_intermixed_args(argv[1:])


def _unknown_verb(argv: list[str]) -> str | None:
    """A message for a first argument that is no verb (with a suggestion), else None."""
    if not argv or argv[0].startswith("-") or argv[0] in VERBS:
        return None
    from tune.config.problems import closest

    close = closest(argv[0], VERBS)
    hint = f" (did you mean '{close}'?)" if close else ""
    return f"tune: error: unknown command {argv[0]!r}; expected one of: {', '.join(VERBS)}{hint}"


def main(argv: list[str] | None = None) -> int:
    """Run the ``tune`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status,
    also recorded under a job (module docstring)."""
    try:
        status = _main(argv)
    except BaseException as exc:
        code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 1
        _record_exit_status(code)
        raise
    _record_exit_status(status)
    return status


def _record_exit_status(status: int) -> None:
    """Write ``status`` into ``$TUNE_EXIT_STATUS_DIR/rank-<RANK>`` when a job script asked for it."""
    import os

    folder = os.environ.get(EXIT_STATUS_DIR)
    if not folder:
        return
    try:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"rank-{os.environ.get('RANK', '0')}")
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(f"{status}\n")
        os.replace(path + ".tmp", path)
    except OSError as exc:
        print(f"warning: could not record the exit status in {folder}: {exc}", file=sys.stderr)


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    message = _unknown_verb(argv)
    if message:
        parser.print_usage(sys.stderr)
        print(message, file=sys.stderr)
        return EXIT_USAGE
    try:
        if argv and argv[0] in VERBS:
            args = parse_verb_args(argv)
        else:
            parser.parse_args(argv)  # prints help for -h, refuses anything else
            parser.print_help(sys.stderr)
            return EXIT_USAGE
    except SystemExit as exc:  # argparse has printed help or a usage error
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    return _run_verb(args)


def _run_verb(args: argparse.Namespace) -> int:
    """Call the verb; turn user mistakes and Ctrl-C into messages and exit codes."""
    from tune.config.problems import RecipeError

    try:
        return args.func(args)
    except RecipeError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return EXIT_USAGE
    except Preempted as exc:
        print(f"preempted: {exc}", file=sys.stderr)
        return EXIT_PREEMPTED
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
