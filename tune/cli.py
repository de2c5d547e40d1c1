"""The ``tune`` command: verbs, arguments, exit codes and error printing.

Verbs: ``run`` (train a recipe), ``validate`` (print the resolved recipe), ``ls`` (list the
shipped recipes), ``cp`` (copy a shipped recipe to edit it), ``data`` (dataset cards and
mixtures), ``merge`` (export a finished run as one standalone model with a model card),
``chat`` (talk to a tuned model). Exit status: 0 on success, 2 for a
user mistake (a bad recipe, a wrong argument: the problem is printed, never a traceback), 130 on
Ctrl-C. Any other exception is a bug in tune and keeps its traceback.

Only argparse is imported at the top: ``tune --help`` and ``tune validate`` never import torch
or the Hugging Face stack; each verb imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tune.errors import UserError

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130


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
    if name in ("run", "validate"):
        parser.add_argument("recipe", help="recipe file, or a shipped recipe name such as tiny/sft-lora")
        parser.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE", help="override a recipe key, e.g. train.lr=1e-4")
    if name == "validate":
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of YAML")
    if name == "run":
        parser.add_argument("--trust-remote-code", action="store_true",
                            help="allow a recipe with model.trust_remote_code: true to run the checkpoint "
                            "repository's Python code (also: TUNE_TRUST_REMOTE_CODE=1)")
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
    """Run the ``tune`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
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
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
