"""`tune data ls | show NAME | preview RECIPE`: the dataset cards, and the mixture as it will train.

`ls` and the card part of `show` read YAML only (no torch). `show` renders one sample row with
the tiny twin's tokenizer (its Harmony template renders exactly like LLM-jp-4's official one),
and `preview` prepares the recipe's data with the recipe's own tokenizer, as `tune run` would.
Supervised text is shown green on a terminal and wrapped in ⟦ ⟧ otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys

from tune.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="data_verb", metavar="ls|show|preview", required=True)
    verbs.add_parser("ls", help="table of the dataset cards")
    show = verbs.add_parser("show", help="a card and one of its samples with the supervised tokens marked")
    show.add_argument("name", help="card name (see `tune data ls`)")
    preview = verbs.add_parser("preview", help="the recipe's mixture as it will be trained")
    preview.add_argument("recipe", help="recipe file, or a shipped recipe name")
    preview.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE")
    preview.add_argument("-n", type=int, default=3, help="samples to show (default 3)")
    preview.add_argument("--json", action="store_true", help="one JSON object per sample, then one with the stats")


def cmd_data(args: argparse.Namespace) -> int:
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
    from tune.data.preview import marked_text, run_texts

    if not sys.stdout.isatty():
        print(marked_text(tokenizer, input_ids, labels))
        return
    from rich.console import Console
    from rich.text import Text

    text = Text()
    for supervised, piece in run_texts(tokenizer, input_ids, labels):
        text.append(piece, style="bold green" if supervised else None)
    Console(highlight=False).print(text)


def _preview(args) -> int:
    from tune.recipe import load_recipe
    from tune.data.conversation_samples import CONVERSATION_SAMPLES
    from tune.data.pipeline import prepare_data
    from tune.data.preview import sample_record
    from tune.models.checkpoints import locate_checkpoint
    from tune.models.loading import load_tokenizer

    loaded = load_recipe(args.recipe, args.overrides)
    recipe = loaded.recipe
    tokenizer = load_tokenizer(recipe, locate_checkpoint(recipe.model))
    prepared = prepare_data(recipe, tokenizer, CONVERSATION_SAMPLES)
    labels = [prepared.report.datasets[i].label for i in range(len(prepared.report.datasets))]
    shown = prepared.train.select(range(min(args.n, len(prepared.train))))
    if args.json:
        for row in shown:
            print(json.dumps(sample_record(tokenizer, labels[row["dataset"]], row["input_ids"], row["labels"]), ensure_ascii=False))
        print(json.dumps({"stats": prepared.report.to_dict(), "cache_key": prepared.key}, ensure_ascii=False))
        return 0
    for number, row in enumerate(shown, start=1):
        print(f"--- sample {number} of {len(prepared.train)} ({labels[row['dataset']]}, {len(row['input_ids'])} tokens)")
        _print_marked(tokenizer, row["input_ids"], row["labels"])
    print("---")
    for line in prepared.report.lines():
        print(line)
    return 0
