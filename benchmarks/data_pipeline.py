"""tune's data preparation vs. TRL's own SFT preprocessing, on the real LLM-jp-4 tokenizer.

The rows: every SFT card's bundled samples in their own source formats, scaled up `--scale`
times (each copy made unique so deduplication keeps it). tune converts, renders with the
official chat template, derives assistant-only labels and reports packing; TRL gets the same
conversations already converted to `messages` (it has no converters) and tokenizes them with
the same template and pinned kwargs (`SFTTrainer._prepare_dataset`, packing on, no loss mask:
the LLM-jp-4 template has no generation markers for TRL's `assistant_only_loss`).

Each side runs once to warm up (template compilation, first imports), then ``--repeats`` times,
alternating, in one process; a single run takes about a second here, so one run is mostly noise.
Prints the median samples/s of both, their ratio (target >= 1), and tune's padding fraction
unpacked vs packed (target < 2%) with how full the packed rows are.

    python benchmarks/data_pipeline.py [--scale 40] [--repeats 5] [--tokenizer tests/assets/llmjp4-tokenizer]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PINNED = {"conversation_start_date": "2026-04-01", "reasoning_effort": "medium"}


def scaled_sources(work: Path, scale: int) -> tuple[list[dict], list[list[dict]]]:
    """Write each SFT card's samples ``scale`` times (made unique) and return recipe entries + messages."""
    from tune.data.cards import card_names, card_samples_path, load_card
    from tune.data.converters import get_converter

    entries, conversations = [], []
    for name in card_names():
        card = load_card(name)
        if card.kind != "sft":
            continue
        converter = get_converter(card.source.converter)
        rows = [json.loads(line) for line in card_samples_path(card).read_text().splitlines() if line.strip()]
        path = work / f"{name}.jsonl"
        with open(path, "w") as handle:
            for copy in range(scale):
                for row in rows:
                    unique = json.loads(json.dumps(row, ensure_ascii=False).replace("。", f"。{copy}", 1)
                                        if "。" in json.dumps(row, ensure_ascii=False) else json.dumps(row))
                    handle.write(json.dumps(unique, ensure_ascii=False) + "\n")
                    conversations.append([dict(m) for m in converter(unique, card.source.fields).messages])
        entries.append({"card": name, "path": str(path)})
    return entries, conversations


def run_tune(entries, tokenizer_dir: Path, work: Path) -> tuple[float, int, object]:
    from tune.data.pipeline import prepare_data
    from tune.recipe import load_recipe

    recipe_path = work / "bench.yaml"
    recipe_path.write_text(json.dumps({
        "model": {"name": "tiny-llm-jp-4-8b", "tokenizer": str(tokenizer_dir)},
        "data": {"datasets": entries, "max_seq_len": 4096, "packing": True, "cache": False, "eval_fraction": 0},
        "train": {"per_device_batch_size": 8},
    }))
    recipe = load_recipe(recipe_path).recipe
    tokenizer = _tokenizer(tokenizer_dir)
    started = time.perf_counter()
    prepared = prepare_data(recipe, tokenizer)
    seconds = time.perf_counter() - started
    return seconds, prepared.report.totals().rows_read, prepared.report


def run_trl(conversations, tokenizer_dir: Path, work: Path) -> tuple[float, int]:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    tokenizer = _tokenizer(tokenizer_dir)
    dataset = Dataset.from_list([{"messages": c, "chat_template_kwargs": PINNED} for c in conversations])
    args = SFTConfig(output_dir=str(work / "trl"), max_length=4096, packing=True, report_to="none", use_cpu=True,
                     bf16=False)
    started = time.perf_counter()
    prepared = SFTTrainer._prepare_dataset(_Bare(tokenizer, args), dataset, tokenizer, args, True, None, "train")
    seconds = time.perf_counter() - started
    assert len(prepared) > 0
    return seconds, len(conversations)


class _Bare:
    """Just enough of an SFTTrainer for `_prepare_dataset` (the attributes it reads)."""

    def __init__(self, tokenizer, args):
        self._tokenizer, self.args, self.chat_template = tokenizer, args, None
        self.completion_only_loss, self._signature_columns = False, None


@functools.lru_cache(maxsize=None)
def _tokenizer(folder: Path):
    """The fast tokenizer built from the SentencePiece assets in ``folder`` (built once, outside every timing)."""
    from tune.models.tokenizer_sentencepiece import build_fast_tokenizer_from_assets

    return build_fast_tokenizer_from_assets(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each side, after one warm-up (default 5)")
    parser.add_argument("--tokenizer", default=str(ROOT / "tests" / "assets" / "llmjp4-tokenizer"),
                        help="LLM-jp-4 tokenizer assets folder (default: the copy vendored for the tests)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    import trl.data_utils  # noqa: F401  (import cost kept out of both timings)
    tokenizer_dir = Path(args.tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        entries, conversations = scaled_sources(work, args.scale)
        tune_rates, trl_rates = [], []
        for repeat in range(args.repeats + 1):  # the first of each is the warm-up
            tune_s, tune_rows, report = run_tune(entries, tokenizer_dir, work)
            trl_s, trl_rows = run_trl(conversations, tokenizer_dir, work)
            if repeat:
                tune_rates.append(tune_rows / tune_s)
                trl_rates.append(trl_rows / trl_s)
    tune_rate, trl_rate = statistics.median(tune_rates), statistics.median(trl_rates)
    print(f"{len(entries)} SFT cards x {args.scale}: {tune_rows} rows, real LLM-jp-4 tokenizer, official template")
    print(f"{'':<44}{'tune':>10}{'TRL':>10}")
    print(f"{'samples/s, median of ' + str(args.repeats) + ' (tune: convert+render+mask+pack)':<44}{tune_rate:>10,.0f}{trl_rate:>10,.0f}")
    print(f"ratio tune / TRL: {tune_rate / trl_rate:.2f}   (target >= 1)")
    print(f"padding: unpacked {report.padding_fraction:.1%} (batch 8), packed {report.packed_padding_fraction:.1%}"
          f" (target < 2%); packed rows {report.packed_fill:.1%} full")


if __name__ == "__main__":
    main()
