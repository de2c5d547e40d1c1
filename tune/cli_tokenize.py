"""`tune data tokenize INPUT... --out PREFIX [--model NAME | --recipe FILE]`: corpus files -> Megatron `.bin`/`.idx`.

The verb builds the tokenizer through tune.models (a preset such as `tiny-llm-jp-4-8b` or
`llm-jp-4-8b`, a hub id, a local checkpoint or tokenizer folder, or the model of `--recipe FILE`)
and hands it to tune.data.tokenize_corpus, which says what is written and how a run resumes,
shards and merges. `--merge-shards N --out PREFIX` joins the N shard outputs of `--shard i/N` runs.
The manifest's summary goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tune.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="corpus files: .jsonl, .jsonl.gz, .parquet or .txt (in this order in the output)")
    parser.add_argument("--out", required=True, metavar="PREFIX",
                        help="output prefix: writes PREFIX.bin, PREFIX.idx and PREFIX.manifest.json")
    parser.add_argument("--model", metavar="NAME", help="whose tokenizer: a preset (tiny-llm-jp-4-8b, llm-jp-4-8b), "
                        "a hub id, or a local checkpoint or tokenizer folder")
    parser.add_argument("--recipe", metavar="FILE", help="take the tokenizer of this recipe's model (model.tokenizer, else model.name)")
    parser.add_argument("--text-field", default="text", help="JSONL key / parquet column holding the text (default: text)")
    parser.add_argument("--txt-documents", choices=("file", "line"), default="file",
                        help=".txt inputs: one document per file (default) or per line")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="encoding processes (default 1); "
                        "the output is the same for any N")
    parser.add_argument("--shard", metavar="i/n", help="tokenize only the i-th (0-based) of n contiguous blocks of "
                        "the inputs into PREFIX.shard-i-of-n (one per node); join them with --merge-shards n")
    parser.add_argument("--merge-shards", type=int, metavar="N",
                        help="join the N complete shard outputs of PREFIX into PREFIX (no inputs, no tokenizer)")


def cmd_tokenize(args: argparse.Namespace) -> int:
    """Run the verb; UserError (exit 2) for a wrong combination of options or what tune.data refuses."""
    from tune.data.tokenize_corpus import TokenizeOptions, merge_shards, tokenize_corpus

    if args.merge_shards is not None:
        if args.inputs or args.shard or args.model or args.recipe:
            raise UserError("--merge-shards takes only --out: the shards already name their inputs and tokenizer")
        _summary(args.out, merge_shards(args.out, args.merge_shards))
        return 0
    if bool(args.model) == bool(args.recipe):
        raise UserError("name the tokenizer with exactly one of --model NAME or --recipe FILE")
    shard = _parse_shard(args.shard) if args.shard else None
    tokenizer, source = _tokenizer(args)
    options = TokenizeOptions(text_field=args.text_field, txt_documents=args.txt_documents, workers=args.workers)
    manifest = tokenize_corpus([Path(p) for p in args.inputs], args.out, tokenizer, source, options, shard)
    from tune.data.tokenize_corpus import shard_prefix

    _summary(shard_prefix(args.out, *shard) if shard else args.out, manifest)
    return 0


def _parse_shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    try:
        return int(index), int(count)
    except ValueError:
        raise UserError(f"--shard {text!r}: expected i/n, e.g. 0/4 for the first of 4 shards") from None


def _tokenizer(args: argparse.Namespace):
    """The fast tokenizer the verb's options name and a short name for the manifest."""
    from tune.config.schema import ModelSection
    from tune.models.checkpoints import locate_checkpoint
    from tune.models.tokenizer_sentencepiece import build_fast_tokenizer_from_assets

    if args.recipe:
        from tune.recipe import load_recipe

        model = load_recipe(args.recipe).recipe.model
    else:
        model = ModelSection(name=args.model)
    if model.tokenizer:
        folder, source = Path(model.tokenizer), model.tokenizer
    elif Path(model.name).is_dir() and not (Path(model.name) / "config.json").is_file():
        folder, source = Path(model.name), model.name  # a tokenizer folder, no checkpoint
    else:
        checkpoint = locate_checkpoint(model)
        folder, source = checkpoint.folder, checkpoint.source
    try:
        tokenizer = build_fast_tokenizer_from_assets(folder)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"cannot build a tokenizer from {folder}: {err}") from None
    _check_sentencepiece_ids(folder, tokenizer)
    return tokenizer, source


def _check_sentencepiece_ids(folder: Path, tokenizer) -> None:
    """Refuse a tokenizer whose BOS / EOS ids differ from its SentencePiece model's bos_id() / eos_id(),
    which is what Megatron's Llama2Tokenizer writes (tune.data.tokenize_corpus)."""
    models = sorted(folder.glob("*.model"))
    if len(models) != 1:
        return
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(models[0]))
    expected = (processor.bos_id(), processor.eos_id())
    if (tokenizer.bos_token_id, tokenizer.eos_token_id) != expected:
        raise UserError(f"{folder}: the tokenizer's BOS/EOS ids {tokenizer.bos_token_id}/{tokenizer.eos_token_id} "
                        f"differ from its SentencePiece model's bos_id/eos_id {expected[0]}/{expected[1]} "
                        f"({models[0].name}), which Megatron's Llama2Tokenizer writes; fix tokenizer_config.json")


def _summary(prefix: str, manifest: dict) -> None:
    tokenizer = manifest["tokenizer"]
    print(f"wrote {prefix}.bin / .idx: {manifest['documents']:,} documents, {manifest['tokens']:,} tokens "
          f"({manifest['dtype']}; BOS {tokenizer['bos_id']}, EOD {tokenizer['eod_id']}, tokenizer {tokenizer['source']})")
    print(f"manifest: {prefix}.manifest.json", file=sys.stdout)
