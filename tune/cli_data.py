"""`tune data ls | show NAME | preview RECIPE`: the dataset cards, and the mixture as it will train.

`ls` and the card part of `show` read YAML only (no torch). `show` renders one sample row with
the tiny twin's tokenizer (its Harmony template renders exactly like LLM-jp-4's official one),
and `preview` prepares the recipe's data with the recipe's own tokenizer and its method's sample
builder, as `tune run` would: SFT samples, or DPO pairs (the prompt, then the chosen and the
rejected answer). Text that carries the loss is shown green on a terminal and wrapped in ⟦ ⟧
otherwise. A cpt recipe's preview builds Megatron's indices as `tune run` would
(tune.data.corpus_pipeline) and shows the first training windows in their global order, decoded, each
with its corpus, then each corpus's tokens, repeat, target and realized share, epochs seen and
held-out windows, and the planned steps.
"""

from __future__ import annotations

import argparse
import json
import sys

from tune.errors import UserError


def _ls_arguments(parser: argparse.ArgumentParser) -> None:
    """`tune data ls` takes no argument."""


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="card name (see `tune data ls`)")


def _preview_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe file, or a shipped recipe name")
    parser.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override a recipe key, e.g. data.max_seq_len=512 (anywhere on the line)")
    parser.add_argument("-n", type=int, default=3, help="samples (DPO: pairs) to show (default 3)")
    parser.add_argument("--json", action="store_true", help="one JSON object per sample (DPO: per pair), then one with the stats")


def _tokenize_arguments(parser: argparse.ArgumentParser) -> None:
    from tune.cli_tokenize import add_arguments  # the verb's own module (tune.cli_tokenize)

    add_arguments(parser)


# The sub-verbs of `tune data`: help line and the function that adds their arguments.
SUBVERBS = {
    "ls": ("table of the dataset cards", _ls_arguments),
    "show": ("a card and one of its samples with the supervised tokens marked", _show_arguments),
    "preview": ("the recipe's mixture as it will be trained (SFT samples, DPO pairs, or cpt corpus windows)",
                _preview_arguments),
    "tokenize": ("corpus files -> a Megatron indexed dataset (.bin/.idx) with the model's tokenizer",
                 _tokenize_arguments),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sub-verbs of `tune data` as sub-parsers of ``parser``: what `tune data --help` lists and
    how a missing or unknown sub-verb is refused. ``parse_args`` parses a sub-verb's own line."""
    verbs = parser.add_subparsers(dest="data_verb", metavar="|".join(SUBVERBS), required=True)
    for name, (help_text, add) in SUBVERBS.items():
        add(verbs.add_parser(name, help=help_text, description=help_text))


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The arguments of `tune data ARGV` (``parser`` built by ``add_arguments``), its handler in `func`.

    A sub-verb's options may come before, between or after its positionals, so `tune data preview
    RECIPE -n 10 data.on_bad_row=error` takes the override as `tune run` does. Without a known
    sub-verb first, ``parser`` parses: it prints help, or refuses with argparse's usage error.
    Raises SystemExit as argparse does."""
    if not argv or argv[0] not in SUBVERBS:
        return parser.parse_args(argv)
    name = argv[0]
    help_text, add = SUBVERBS[name]
    sub = argparse.ArgumentParser(prog=f"{parser.prog} {name}", description=help_text)
    add(sub)
    args = sub.parse_intermixed_args(argv[1:])
    args.data_verb, args.func = name, cmd_data
    return args


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_verb == "tokenize":
        from tune.cli_tokenize import cmd_tokenize

        return cmd_tokenize(args)
    return {"ls": _ls, "show": _show, "preview": _preview}[args.data_verb](args)


def _ls(args) -> int:
    from tune.data.cards import card_names, load_card

    rows = []
    for name in card_names():
        card = load_card(name)
        rows.append((name, ",".join(card.languages), card.kind, _rows(card.approx_rows), card.license or "unknown"))
    _table(("card", "languages", "kind", "rows", "licence"), rows)
    return 0


def _rows(count) -> str:
    return "unknown" if count is None else f"~{count:,}"


def _table(header, rows) -> None:
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*header, box=None, header_style="bold")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def _show(args) -> int:
    from tune.data.cards import card_names, card_samples_path, load_card

    if args.name not in card_names():
        from tune.config.problems import closest

        close = closest(args.name, card_names())
        raise UserError(f"no dataset card named {args.name!r}" + (f" (did you mean '{close}'?)" if close else "")
                        + "; `tune data ls` lists them")
    card = load_card(args.name)
    print(card_samples_path(card).parent.joinpath(f"{card.name}.yaml").read_text().rstrip())
    print()
    _show_sample(card)
    return 0


def _show_sample(card) -> None:
    from tune.config.schema import DataSection
    from tune.data.converters import get_converter
    from tune.data.records import BadRow, Conversation
    from tune.data.render import render_record
    from tune.data.rows import read_rows
    from tune.data.cards import card_samples_path
    from tune.models.presets import get_preset
    from tune.models.tiny_twins import ensure_twin
    from tune.models.tokenizer_sentencepiece import build_fast_tokenizer_from_assets

    converter = get_converter(card.source.converter)
    for _, row in read_rows(card_samples_path(card)):
        if isinstance(row, BadRow):
            continue
        record = converter(row, card.source.fields)
        if not isinstance(record, Conversation):
            print(f"sample ({record.__class__.__name__.lower()}):")
            print(json.dumps(row, ensure_ascii=False, indent=2))
            return
        tokenizer = build_fast_tokenizer_from_assets(ensure_twin(get_preset("tiny-llm-jp-4-8b")))
        sample = render_record(tokenizer, record, DataSection(datasets=[{"card": card.name}]))
        print("sample, rendered (supervised tokens marked):")
        _print_marked(tokenizer, sample.input_ids, sample.labels)
        return


def _print_marked(tokenizer, input_ids, labels) -> None:
    from tune.data.preview import run_texts

    _print_runs(run_texts(tokenizer, input_ids, labels))


def _print_runs(texts: list[tuple[bool, str]]) -> None:
    """Print ``(supervised?, text)`` runs: supervised ones green on a terminal, wrapped in ⟦ ⟧ otherwise."""
    from tune.data.preview import mark_runs

    if not sys.stdout.isatty():
        print(mark_runs(texts))
        return
    from rich.console import Console
    from rich.text import Text

    text = Text()
    for supervised, piece in texts:
        text.append(piece, style="bold green" if supervised else None)
    Console(highlight=False).print(text)


def _preview(args) -> int:
    """Prepare the recipe's data as `tune run` would (the sample builder of its method: SFT
    conversations, or DPO pairs) and show the first ``-n`` samples with what carries the loss
    marked, then the data report; with ``--json``, one object per sample or pair, then the stats."""
    from tune.recipe import load_recipe
    from tune.data.pipeline import builder_for, prepare_data
    from tune.models.checkpoints import locate_checkpoint
    from tune.models.loading import load_tokenizer

    if args.n < 0:
        raise UserError(f"-n {args.n}: must be 0 or more (the samples to show)")
    loaded = load_recipe(args.recipe, args.overrides)
    recipe = loaded.recipe
    tokenizer = load_tokenizer(recipe, locate_checkpoint(recipe.model))
    if recipe.method.name == "cpt":
        return _preview_corpora(args, recipe, tokenizer)
    builder = builder_for(recipe)
    prepared = prepare_data(recipe, tokenizer, builder)
    labels = [prepared.report.datasets[i].label for i in range(len(prepared.report.datasets))]
    shown = prepared.train.select(range(min(args.n, len(prepared.train))))
    show = {"sft": _show_sample_row, "preference": _show_pair}[builder.kind]
    for number, row in enumerate(shown, start=1):
        show(tokenizer, row, labels[row["dataset"]], number, len(prepared.train), args.json)
    if args.json:
        print(json.dumps({"stats": prepared.report.to_dict(), "cache_key": prepared.key}, ensure_ascii=False))
        return 0
    print("---")
    for line in prepared.report.lines():
        print(line)
    return 0


def _preview_corpora(args, recipe, tokenizer) -> int:
    """A cpt recipe: build Megatron's indices as `tune run` would (tune.data.corpus_pipeline), show the
    first ``-n`` training windows in their global order, decoded, with the corpus each comes from, then
    the report (tokens, repeats, target and realized shares, epochs seen, held-out windows, planned
    steps); with ``--json``, one object per window (its ids too), then the report's figures."""
    from tune.data.corpus_pipeline import prepare_corpora

    data = prepare_corpora(recipe, tokenizer)
    names = [corpus.name for corpus in data.report.corpora]
    for index in range(min(args.n, len(data.train))):
        ids = data.train[index]["input_ids"].tolist()
        corpus = names[data.train.dataset_id(index)]
        text = tokenizer.decode(ids)
        if args.json:
            print(json.dumps({"window": index, "corpus": corpus, "input_ids": ids, "text": text}, ensure_ascii=False))
        else:
            print(f"--- window {index + 1} of {len(data.train):,} ({corpus}, {len(ids)} tokens)")
            print(text)
    if args.json:
        print(json.dumps({"stats": data.report.to_dict(), "cache_key": data.key}, ensure_ascii=False))
        return 0
    print("---")
    for line in data.report.lines():
        print(line)
    return 0


def _show_sample_row(tokenizer, row, label: str, number: int, total: int, as_json: bool) -> None:
    """One SFT sample: the rendered text with its supervised runs marked, or its JSON object."""
    from tune.data.preview import sample_record

    if as_json:
        print(json.dumps(sample_record(tokenizer, label, row["input_ids"], row["labels"]), ensure_ascii=False))
        return
    print(f"--- sample {number} of {total} ({label}, {len(row['input_ids'])} tokens)")
    _print_marked(tokenizer, row["input_ids"], row["labels"])


def _show_pair(tokenizer, row, label: str, number: int, total: int, as_json: bool) -> None:
    """One DPO pair: the prompt (no loss), then the chosen and the rejected answer (all loss), or its JSON object."""
    from tune.data.preview import pair_record, pair_runs

    if as_json:
        print(json.dumps(pair_record(tokenizer, label, row["prompt_ids"], row["chosen_ids"], row["rejected_ids"]),
                         ensure_ascii=False))
        return
    prompt, chosen, rejected = pair_runs(tokenizer, row["prompt_ids"], row["chosen_ids"], row["rejected_ids"])
    print(f"--- pair {number} of {total} ({label}; prompt {len(row['prompt_ids'])} tokens, "
          f"chosen {len(row['chosen_ids'])}, rejected {len(row['rejected_ids'])})")
    print("prompt:")
    _print_runs([(False, prompt)])
    print("chosen:")
    _print_runs(chosen)
    print("rejected:")
    _print_runs(rejected)
