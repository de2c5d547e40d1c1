"""How data preparation scales: peak memory and tokens/s at 1x, 4x and 16x a synthetic mixture, and 1 vs 2 processes.

The mixture: four JSONL files of synthetic Japanese/English conversations (two or three turns,
about 700 tokens each with the LLM-jp-4 tokenizer), every row unique, trained on by the tiny
twin with the real LLM-jp-4 tokenizer and the official template. Each measurement prepares the
recipe's data from scratch (`data.cache=false`) with `tune data preview`, the command a user runs,
in its own process; the peak resident memory is that process's (or its largest worker's), and the
seconds are the whole command's (imports and building the tokenizer included, ~8 s here).

Prints, per scale: rows, tokens, seconds, tokens/s and peak RSS, then the ratio of peak RSS at the
largest scale to the smallest (target <= 1.5), then 1 vs 2 processes at one scale.

    python benchmarks/data_scale.py [--rows 2500] [--scales 1 4 16] [--procs-scale 4]
                                    [--tokenizer tests/assets/llmjp4-tokenizer]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = 4
WORDS_JA = ["東京", "学習", "言語", "モデル", "データ", "質問", "回答", "研究", "日本語", "計算", "説明", "例えば",
            "重要", "方法", "結果", "理由", "今日", "天気", "歴史", "科学"]
WORDS_EN = ["model", "training", "language", "data", "question", "answer", "research", "token", "example", "method",
            "result", "reason", "weather", "history", "science", "compute", "explain", "japanese", "corpus", "recipe"]


def sentence(rng: random.Random, words: int) -> str:
    ja = rng.random() < 0.6
    pool = WORDS_JA if ja else WORDS_EN
    text = ("" if ja else " ").join(rng.choice(pool) for _ in range(words))
    return text + ("。" if ja else ".")


def conversation(rng: random.Random, index: int) -> dict:
    messages = []
    for turn in range(rng.choice((2, 3))):
        messages.append({"role": "user", "content": f"[{index}-{turn}] " + " ".join(sentence(rng, 12) for _ in range(3))})
        messages.append({"role": "assistant", "content": " ".join(sentence(rng, 15) for _ in range(rng.randint(6, 12)))})
    return {"messages": messages}


def write_mixture(folder: Path, rows: int, seed: int = 0) -> list[Path]:
    """``rows`` unique conversations split over DATASETS JSONL files."""
    rng = random.Random(seed)
    paths = [folder / f"synthetic-{d}.jsonl" for d in range(DATASETS)]
    handles = [open(path, "w", encoding="utf-8") for path in paths]
    for index in range(rows):
        handles[index % DATASETS].write(json.dumps(conversation(rng, index), ensure_ascii=False) + "\n")
    for handle in handles:
        handle.close()
    return paths


def measure(recipe: Path, processes: int, env: dict) -> dict:
    """Prepare ``recipe`` with `tune data preview` in a new process: seconds, peak RSS and the report."""
    command = [sys.executable, "-m", "tune", "data", "preview", str(recipe), "data.cache=false", "-n", "0", "--json"]
    if processes > 1:
        command.insert(-3, f"data.num_proc={processes}")
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, env=env, cwd=ROOT, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"preparation failed:\n{done.stderr[-3000:]}")
    return {"seconds": seconds, "stats": json.loads(done.stdout.splitlines()[-1])["stats"]}


def run(recipe: Path, processes: int, env: dict) -> dict:
    """``measure`` in a helper process of its own, so ``ru_maxrss`` of its children is this preparation's alone."""
    helper = [sys.executable, __file__, "--one", str(recipe), str(processes)]
    done = subprocess.run(helper, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(done.stderr[-3000:])
    return json.loads(done.stdout.splitlines()[-1])


def one(recipe: str, processes: int) -> None:
    import resource

    result = measure(Path(recipe), processes, dict(os.environ))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(result))


def recipe_for(folder: Path, paths: list[Path], tokenizer: Path) -> Path:
    recipe = folder / "scale.yaml"
    recipe.write_text(json.dumps({
        "model": {"name": "tiny-llm-jp-4-8b", "tokenizer": str(tokenizer)},
        "data": {"datasets": [{"path": str(p)} for p in paths], "max_seq_len": 4096},
    }))
    return recipe


def row(label: str, result: dict) -> str:
    totals = result["stats"]["datasets"]
    rows = sum(d["rows_read"] for d in totals)
    tokens = sum(d["tokens"] for d in totals)
    return (f"{label:<14}{rows:>9,}{tokens:>14,}{result['seconds']:>9.1f}{tokens / result['seconds']:>12,.0f}"
            f"{result['peak_rss_mb']:>13,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2500, help="rows at 1x (default 2500)")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--procs-scale", type=int, default=4, help="scale of the 1 vs 2 processes comparison (0: none)")
    parser.add_argument("--tokenizer", default=str(ROOT / "tests" / "assets" / "llmjp4-tokenizer"),
                        help="LLM-jp-4 tokenizer assets folder (default: the copy vendored for the tests)")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(args.one[0], int(args.one[1]))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    header = f"{'':<14}{'rows':>9}{'tokens':>14}{'seconds':>9}{'tokens/s':>12}{'peak RSS MB':>13}"
    with tempfile.TemporaryDirectory() as tmp:
        env["TUNE_CACHE"] = str(Path(tmp) / "cache")
        results = {}
        warm = Path(tmp) / "warm-up"  # builds the tiny twin into the cache, outside every measurement
        warm.mkdir()
        run(recipe_for(warm, write_mixture(warm, 8), Path(args.tokenizer)), 1, env)
        print(f"synthetic mixture, {DATASETS} datasets, 1x = {args.rows:,} rows; real LLM-jp-4 tokenizer, official template")
        print(header)
        for scale in sorted(set(args.scales) | ({args.procs_scale} - {0})):
            folder = Path(tmp) / f"x{scale}"
            folder.mkdir()
            recipe = recipe_for(folder, write_mixture(folder, args.rows * scale), Path(args.tokenizer))
            results[scale] = {1: run(recipe, 1, env)}
            if scale == args.procs_scale:
                results[scale][2] = run(recipe, 2, env)
            if scale in args.scales:
                print(row(f"{scale}x, 1 proc", results[scale][1]))
        low, high = min(args.scales), max(args.scales)
        ratio = results[high][1]["peak_rss_mb"] / results[low][1]["peak_rss_mb"]
        print(f"peak RSS {high}x / {low}x: {ratio:.2f}   (target <= 1.5)")
        if not args.procs_scale:
            return
        print(header)
        for processes in (1, 2):
            print(row(f"{args.procs_scale}x, {processes} proc", results[args.procs_scale][processes]))
        speedup = results[args.procs_scale][1]["seconds"] / results[args.procs_scale][2]["seconds"]
        print(f"2 processes / 1: {speedup:.2f}x faster (wall time of the whole command)")


if __name__ == "__main__":
    main()
