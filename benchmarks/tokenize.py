"""`tune data tokenize` throughput: tokens/s per core with LLM-jp-4's real tokenizer, against a plain
``tokenizer(batch)`` loop as the floor.

The corpus: ``--documents`` generated Japanese + English documents (templated sentences over varied
words and numbers, about half of each language, a few hundred to a few thousand characters each),
written as JSONL. The tokenizer: LLM-jp-4's, built by tune from the vendored SentencePiece model
(tests/assets/llmjp4-tokenizer), single-threaded (``TOKENIZERS_PARALLELISM=false``) so that a
"core" is one process.

    floor       ``tokenizer(texts[i:i + 1000])`` over the texts already in memory: encoding only
                (BOS added, no EOD), no reading, no writing
    tune x1     tokenize_corpus(workers=1): read and hash the file, encode, write .bin/.idx through
                Megatron's builder, assemble, manifest; all in one process
    tune x2     the same with 2 encoding processes (the parent reads and writes): per core = / 2

Each runs once to warm up, then ``--repeats`` times; the median is printed with its ratio to the
floor. On a shared 2-core machine the x2 row is bounded by the cores the others leave free.

    python benchmarks/tokenize.py [--documents 3000] [--repeats 3] [--workers 2]
"""

from __future__ import annotations

import os
import sys

# Run as a script, this file's folder comes first on sys.path and this file's name hides the standard
# library's `tokenize` (which transformers imports): take the folder off the path before anything imports it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [entry for entry in sys.path if os.path.abspath(entry or ".") != _HERE]

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

os.environ["TOKENIZERS_PARALLELISM"] = "false"
ROOT = Path(__file__).resolve().parents[1]

JA_WORDS = ["東京", "大阪", "研究者", "学生", "図書館", "新しい技術", "言語モデル", "天気", "会議", "医療", "特許", "法律",
            "経済", "歴史", "音楽", "料理", "旅行", "電車", "病院", "大学"]
JA_TEMPLATES = ["{a}の{b}について{n}人が議論しました。", "{a}では{b}が{n}年前から注目されています。",
                "昨日、{a}で{b}に関する発表がありました。", "{a}と{b}の関係は{n}つの観点から説明できます。"]
EN_WORDS = ["researchers", "the library", "a language model", "the weather", "patent law", "the hospital",
            "economics", "history", "music", "the train", "students", "the committee", "medicine", "Tokyo"]
EN_TEMPLATES = ["In {n}, {a} studied {b} in detail.", "{A} and {b} were discussed by {n} people.",
                "The report on {b} by {a} ran to {n} pages.", "Nobody expected {a} to change {b} so quickly."]


def corpus(documents: int, seed: int = 0) -> list[str]:
    """``documents`` texts, alternately Japanese and English, deterministic for ``seed``."""
    rng = random.Random(seed)
    texts = []
    for k in range(documents):
        words, templates = (JA_WORDS, JA_TEMPLATES) if k % 2 == 0 else (EN_WORDS, EN_TEMPLATES)
        sentences = []
        for _ in range(rng.randint(5, 60)):
            a, b = rng.sample(words, 2)
            sentences.append(rng.choice(templates).format(a=a, A=a[:1].upper() + a[1:], b=b, n=rng.randint(2, 2025)))
        texts.append(("" if k % 2 == 0 else " ").join(sentences))
    return texts


def floor(tokenizer, texts: list[str]) -> tuple[int, float]:
    started = time.perf_counter()
    tokens = 0
    for start in range(0, len(texts), 1000):
        tokens += sum(len(ids) for ids in tokenizer(texts[start:start + 1000]).input_ids)
    return tokens, time.perf_counter() - started


def tune_path(tokenizer, path: Path, workers: int, out: Path) -> tuple[int, float]:
    from tune.data.tokenize_corpus import TokenizeOptions, tokenize_corpus

    for suffix in (".bin", ".idx", ".manifest.json"):
        Path(f"{out}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    manifest = tokenize_corpus([path], out, tokenizer, "llm-jp-4", TokenizeOptions(workers=workers, progress_every=1e9),
                               stream=open(os.devnull, "w"))
    return manifest["tokens"], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tokenizer", type=Path, default=ROOT / "tests" / "assets" / "llmjp4-tokenizer")
    args = parser.parse_args()

    from tune.models.tokenizer_sentencepiece import build_fast_tokenizer_from_assets

    tokenizer = build_fast_tokenizer_from_assets(args.tokenizer)
    texts = corpus(args.documents)
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "corpus.jsonl"
        path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
        runs = {"floor": lambda: floor(tokenizer, texts),
                "tune x1": lambda: tune_path(tokenizer, path, 1, Path(work) / "one"),
                f"tune x{args.workers}": lambda: tune_path(tokenizer, path, args.workers, Path(work) / "many")}
        cores = {"floor": 1, "tune x1": 1, f"tune x{args.workers}": args.workers}
        rates = {name: [] for name in runs}
        tokens = {}
        for repeat in range(args.repeats + 1):
            for name, run in runs.items():
                count, seconds = run()
                tokens[name] = count
                if repeat:  # the first round warms up
                    rates[name].append(count / seconds)
        size = path.stat().st_size
    tokens["floor"] += args.documents  # tokenizer(batch) adds BOS only; tune also writes an EOD per document
    assert len(set(tokens.values())) == 1, tokens  # every path encodes the same text into the same pieces
    base = statistics.median(rates["floor"])
    print(f"corpus: {args.documents:,} documents, {size / 1e6:.1f} MB JSONL, {tokens['floor']:,} tokens "
          f"(LLM-jp-4 tokenizer, {len(tokenizer):,} ids); os.cpu_count() = {os.cpu_count()}")
    print(f"{'path':<10} {'tokens/s':>12} {'tokens/s/core':>14} {'vs floor':>9}")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:<10} {rate:>12,.0f} {rate / cores[name]:>14,.0f} {rate / cores[name] / base:>8.2f}x")


if __name__ == "__main__":
    main()
