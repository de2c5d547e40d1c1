"""Write the tiny corpora the tiny pre-training recipes blend, and tokenize them: tune/samples/corpora/.

Three corpora, all text written here from templates (nothing copied from anywhere), drawn from a
fixed seed so that every run writes the same bytes:

    tiny-ja     Japanese prose: errands (who went where, bought what, how many), arithmetic
                sentences, counting, weekdays in order
    tiny-en     the same kinds of English prose
    tiny-code   small Python functions (arithmetic, loops, conditionals) with docstrings and calls

The structure is learnable (a shop decides what is bought there, sums are right, sequences continue),
so the loss of a tiny model falls visibly in a few dozen steps. Each corpus is ~60k tokens with
the tiny twins' tokenizer: enough for 40 steps of 8 windows x 256 tokens of a three-way blend
(~27k tokens per corpus) with room to spare, and all files together stay under ~1.5 MB.

    python scripts/make_tiny_corpora.py [--out DIR]   (default: tune/samples/corpora)

writes DIR/src/NAME.jsonl, then runs `tune data tokenize src/NAME.jsonl --out NAME --model
tiny-llm-jp-4-8b` inside DIR (both tiny twins share that tokenizer), giving DIR/NAME.{bin,idx,manifest.json}.
tests/data/test_tokenize_corpus.py checks that this reproduces the bundled files byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tune" / "samples" / "corpora"
MODEL = "tiny-llm-jp-4-8b"
SEED = 20261202
DOCUMENTS = {"tiny-ja": 640, "tiny-en": 600, "tiny-code": 400}

JA_NAMES = ["さくら", "たろう", "はなこ", "けんじ", "ゆき", "まこと", "あおい", "ひろし"]
JA_SHOPS = [("パン屋", "パン", "個"), ("本屋", "本", "冊"), ("花屋", "花", "本"), ("八百屋", "りんご", "個"),
            ("魚屋", "魚", "匹"), ("文房具屋", "鉛筆", "本")]
JA_DAYS = ["月曜日", "火曜日", "水曜日", "木曜日", "金曜日", "土曜日", "日曜日"]
JA_NUMBERS = ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十"]
JA_WEATHER = [("晴れ", "公園で散歩しました"), ("雨", "家で本を読みました"), ("雪", "雪だるまを作りました"),
              ("くもり", "図書館へ行きました")]

EN_NAMES = ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry"]
EN_SHOPS = [("bakery", "loaves of bread"), ("bookshop", "books"), ("flower shop", "roses"),
            ("greengrocer", "apples"), ("fishmonger", "fish"), ("stationer", "pencils")]
EN_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
EN_NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
EN_WEATHER = [("sunny", "took a walk in the park"), ("rainy", "read a book at home"),
              ("snowy", "built a snowman"), ("cloudy", "went to the library")]

CODE_VERBS = [("add", "+"), ("sub", "-"), ("mul", "*")]
CODE_NOUNS = ["total", "count", "value", "score", "size", "width", "height", "price"]


def ja_document(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(4, 7)):
        kind = rng.randrange(5)
        name = rng.choice(JA_NAMES)
        if kind == 0:
            shop, item, counter = rng.choice(JA_SHOPS)
            day = rng.choice(JA_DAYS)
            count = rng.randint(1, 9)
            sentences.append(f"{name}さんは{day}に{shop}へ行きました。{shop}で{item}を{count}{counter}買いました。")
        elif kind == 1:
            a, b = rng.randint(1, 9), rng.randint(1, 9)
            sentences.append(f"{a}たす{b}は{a + b}です。")
        elif kind == 2:
            start = rng.randrange(6)
            sentences.append("、".join(JA_NUMBERS[start:start + 5]) + "と数えました。")
        elif kind == 3:
            day = rng.randrange(7)
            sentences.append(f"{JA_DAYS[day]}の次は{JA_DAYS[(day + 1) % 7]}です。")
        else:
            weather, activity = rng.choice(JA_WEATHER)
            sentences.append(f"{rng.choice(JA_DAYS)}は{weather}だったので、{name}さんは{activity}。")
    return "".join(sentences)


def en_document(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(4, 7)):
        kind = rng.randrange(5)
        name = rng.choice(EN_NAMES)
        if kind == 0:
            shop, items = rng.choice(EN_SHOPS)
            count = rng.randint(2, 9)
            sentences.append(f"On {rng.choice(EN_DAYS)}, {name} went to the {shop} and bought {count} {items}.")
        elif kind == 1:
            a, b = rng.randint(1, 9), rng.randint(1, 9)
            sentences.append(f"{a} plus {b} is {a + b}.")
        elif kind == 2:
            start = rng.randrange(6)
            sentences.append(f"{name} counted " + ", ".join(EN_NUMBERS[start:start + 5]) + ".")
        elif kind == 3:
            day = rng.randrange(7)
            sentences.append(f"After {EN_DAYS[day]} comes {EN_DAYS[(day + 1) % 7]}.")
        else:
            weather, activity = rng.choice(EN_WEATHER)
            sentences.append(f"It was {weather} on {rng.choice(EN_DAYS)}, so {name} {activity}.")
    return " ".join(sentences)


def code_document(rng: random.Random) -> str:
    blocks = []
    for _ in range(rng.randint(2, 3)):
        kind = rng.randrange(3)
        noun = rng.choice(CODE_NOUNS)
        if kind == 0:
            verb, op = rng.choice(CODE_VERBS)
            n = rng.randint(1, 9)
            x = rng.randint(1, 9)
            result = eval(f"{x} {op} {n}")  # noqa: S307 (our own literal arithmetic)
            blocks.append(f'def {verb}_{n}({noun}):\n    """Return {noun} {op} {n}."""\n    return {noun} {op} {n}\n\n\n'
                          f"assert {verb}_{n}({x}) == {result}\n")
        elif kind == 1:
            n = rng.randint(2, 6)
            blocks.append(f'def sum_{noun}s(items):\n    """Add up the items."""\n    {noun} = 0\n'
                          f"    for item in items:\n        {noun} += item\n    return {noun}\n\n\n"
                          f"print(sum_{noun}s(range({n})))  # {sum(range(n))}\n")
        else:
            limit = rng.randint(2, 9)
            blocks.append(f'def clip_{noun}({noun}):\n    """Keep {noun} at most {limit}."""\n'
                          f"    if {noun} > {limit}:\n        return {limit}\n    return {noun}\n")
    return "\n\n".join(blocks)


WRITERS = {"tiny-ja": ja_document, "tiny-en": en_document, "tiny-code": code_document}


def write_sources(out: Path) -> list[Path]:
    """Write ``out/src/NAME.jsonl`` for every corpus (one ``{"text": ...}`` per line); returns the files."""
    (out / "src").mkdir(parents=True, exist_ok=True)
    written = []
    for index, (name, count) in enumerate(DOCUMENTS.items()):
        rng = random.Random(SEED + index)
        path = out / "src" / f"{name}.jsonl"
        with open(path, "w", encoding="utf-8", newline="\n") as handle:
            for _ in range(count):
                handle.write(json.dumps({"text": WRITERS[name](rng)}, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def tokenize(out: Path) -> None:
    """`tune data tokenize src/NAME.jsonl --out NAME --model tiny-llm-jp-4-8b` inside ``out``."""
    from tune.cli import main

    here = os.getcwd()
    os.chdir(out)
    try:
        for name in DOCUMENTS:
            status = main(["data", "tokenize", f"src/{name}.jsonl", "--out", name, "--model", MODEL])
            if status != 0:
                raise SystemExit(status)
    finally:
        os.chdir(here)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder to write into (default: the bundled one)")
    args = parser.parse_args(argv)
    for name in DOCUMENTS:  # start over: never reuse an earlier output
        for suffix in (".bin", ".idx", ".manifest.json"):
            (args.out / f"{name}{suffix}").unlink(missing_ok=True)
    write_sources(args.out)
    tokenize(args.out.resolve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
