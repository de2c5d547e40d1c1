"""The prepared-data cache: tokenized samples keyed by everything that shapes them, and nothing else.

The key covers: each dataset's source (card identity and revision, or file contents), converter
name + version + field mapping, the sample builder (its kind and version), the tokenizer (its
full definition and chat template), every `data` option that shapes samples (template, render
options, max_seq_len, packing, weights, eval split, ...), the seed, and this pipeline's version.
It does not cover where the run writes (`output.dir`), the recipe's file name, the paths under
which the same files are found, `data.num_proc` (the output is the same) or `data.cache`.

An entry is a folder ``$TUNE_CACHE/data/<key>/`` holding ``train.arrow`` and ``eval.arrow``
(Arrow streams that ``datasets.Dataset.from_file`` memory-maps) and ``report.json``. It is built in
a hidden staging folder next to it (``staging_dir``) and renamed into place when complete, so a
crash never leaves half an entry.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tune.cache_dir import cache_root
from tune.config.schema import DataSection
from tune.data.report import DataReport

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerFast

# Bump when preparation changes its output for the same inputs, or the entry's layout changes.
PIPELINE_VERSION = 4
TRAIN_FILE, EVAL_FILE, REPORT_FILE = "train.arrow", "eval.arrow", "report.json"
# `data` options that do not shape the samples
NOT_IN_KEY = {"cache", "num_proc"}


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerFast) -> str:
    """A hash of the tokenizer's definition, special tokens and chat template."""
    digest = hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode())
    digest.update((tokenizer.chat_template or "").encode())
    digest.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True).encode())
    return digest.hexdigest()


def cache_key(data: DataSection, seed: int, sources: list[dict], tokenizer_hash: str) -> str:
    """The key of prepared data; ``sources`` are per-dataset dicts of converter, version, fields,
    fingerprint and the sample builder's part."""
    options = data.model_dump(exclude=NOT_IN_KEY)
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


def load_cached(key: str) -> tuple[Dataset, Dataset, DataReport] | None:
    """``(train, eval, report)`` stored under ``key`` (memory-mapped), or None when there is no complete entry."""
    folder = cache_dir(key)
    if not (folder / REPORT_FILE).exists():
        return None
    try:
        report = DataReport.from_dict(json.loads((folder / REPORT_FILE).read_text()))
        train, eval_set = open_prepared(folder)
    except Exception:  # an entry from an older tune or a damaged disk: prepare anew
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return train, eval_set, report


def open_prepared(folder: Path) -> tuple[Dataset, Dataset]:
    """The train and eval sets written into ``folder`` (memory-mapped, nothing loaded)."""
    from datasets import Dataset

    return Dataset.from_file(str(folder / TRAIN_FILE)), Dataset.from_file(str(folder / EVAL_FILE))


def staging_dir(key: str) -> Path:
    """A new, private folder to build the entry ``key`` in (next to where it will live)."""
    parent = cache_dir(key).parent
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{key}-", dir=parent))


def store(staging: Path, key: str, report: DataReport) -> Path:
    """Complete the entry built in ``staging`` (its train and eval files) with ``report`` and move it
    into place; the entry's folder. When another process stored the same key first, its entry is
    kept and ``staging`` removed."""
    (staging / REPORT_FILE).write_text(json.dumps(report.to_dict()))
    folder = cache_dir(key)
    try:
        staging.rename(folder)
    except OSError:
        if not (folder / REPORT_FILE).exists():
            raise
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def remove_at_exit(folder: Path) -> None:
    """Delete ``folder`` when this process ends (prepared data that is not cached; the sets stay
    readable until then, memory-mapped)."""
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
