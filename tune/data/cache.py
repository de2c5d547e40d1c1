"""The prepared-data cache: tokenized samples keyed by everything that shapes them, and nothing else.

The key covers: each dataset's source (card identity and revision, or file contents), converter
name + version + field mapping, the tokenizer (its full definition and chat template), every
`data` option (template, render options, max_seq_len, packing, weights, eval split, ...), the
seed, and this pipeline's version. It does not cover where the run writes (`output.dir`), the
recipe's file name, or the paths under which the same files are found.

Entries live in ``$TUNE_CACHE/data/<key>/`` (``train``/``eval`` as Arrow datasets plus
``report.json``), written to a temporary folder and renamed, so a crash never leaves half an entry.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from tune.cache_dir import cache_root
from tune.config.schema import DataSection
from tune.data.report import DataReport

# Bump when preparation changes its output for the same inputs.
PIPELINE_VERSION = 3


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of the tokenizer's definition, special tokens and chat template."""
    digest = hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode())
    digest.update((tokenizer.chat_template or "").encode())
    digest.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True).encode())
    return digest.hexdigest()


def cache_key(data: DataSection, seed: int, sources: list[dict], tokenizer_hash: str) -> str:
    """The key of prepared data; ``sources`` are per-dataset dicts of converter, version, fields, fingerprint."""
    options = data.model_dump(exclude={"cache"})
    for entry in options["datasets"]:
        entry.pop("path")  # where the files are found does not matter; their contents (in sources) do
    payload = {
        "pipeline": PIPELINE_VERSION,
        "data": options,
        "seed": seed,
        "sources": sources,
        "tokenizer": tokenizer_hash,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def cache_dir(key: str) -> Path:
    return cache_root() / "data" / key


def load_cached(key: str):
    """``(train, eval, report)`` stored under ``key``, or None when there is no complete entry."""
    folder = cache_dir(key)
    if not (folder / "report.json").exists():
        return None
    from datasets import Dataset, load_from_disk

    try:
        report = DataReport.from_dict(json.loads((folder / "report.json").read_text()))
        train = load_from_disk(str(folder / "train"))
        if (folder / "eval").exists():
            eval_set = load_from_disk(str(folder / "eval"))
        else:  # no rows were held out (datasets cannot reload an empty saved dataset)
            eval_set = Dataset.from_dict({name: [] for name in train.column_names})
    except Exception:  # an entry from an older tune or a damaged disk: prepare anew
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return train, eval_set, report


def store(key: str, train, eval_set, report: DataReport) -> None:
    """Write an entry for ``key`` (a no-op when another process wrote it first)."""
    folder = cache_dir(key)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder.parent))
    try:
        train.save_to_disk(str(staging / "train"))
        if len(eval_set):
            eval_set.save_to_disk(str(staging / "eval"))
        (staging / "report.json").write_text(json.dumps(report.to_dict()))
        try:
            staging.rename(folder)
        except OSError:
            if not (folder / "report.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
