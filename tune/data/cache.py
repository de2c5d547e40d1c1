"""The prepared-data cache: tokenized samples keyed by everything that shapes them, and nothing else.

The key covers: each dataset's source (card identity and revision, or file contents), converter
name + version + field mapping, the sample builder (its kind and version), the tokenizer (its
full definition and chat template), every `data` option that shapes samples (template, render
options, max_seq_len, packing, weights, eval split, ...), the seed, and this pipeline's version.
It does not cover where the run writes (`output.dir`), the recipe's file name, the paths under
which the same files are found, `data.num_proc` (the output is the same) or `data.cache`.

An entry is a folder ``$TUNE_CACHE/data/<key>/`` holding ``train.arrow`` and ``eval.arrow``
(Arrow streams that ``datasets.Dataset.from_file`` memory-maps), ``report.json``,
``train_lengths.npy`` (the padded lengths of the training samples in order, from which the report's
batch-dependent padding figure is recomputed for the recipe at hand: the batch size is not in the
key, so that changing it does not prepare the data again; absent with `packing: concat`, whose
padding is 0 by construction) and ``checksums.json`` (size and xxh3-128 digest of every other
file), written last. It is built in a hidden staging folder next to it (``staging_dir``) and renamed
into place when complete, so a crash never leaves half an entry.

``load_cached`` checks every file against ``checksums.json`` before the entry is used: a missing
file, another size or another digest (one flipped token id anywhere) makes the entry damaged; it is
removed, the caller is told why, and the data is prepared again. The check reads the whole entry
once (measured on a shared 2-core CI machine, a 2 GiB entry in the page cache: 0.2 s per GiB with
xxh3-128, 1.5 s per GiB with sha256); from a cold disk it costs what reading the entry costs,
which also brings it into the page cache that training then reads. A cheaper check (sizes, the
head and tail, Arrow's own validation) would miss a flipped token id in the middle.

Many processes (a job of several ranks). Data is prepared once per cache: ``JobPreparation`` says
whether this process prepares or waits, decided by `tune run`'s preflight (tune.training.preflight)
from whether the ranks see the main rank's ``$TUNE_CACHE``: shared by the whole job (one file
system), the main rank prepares once for the job; node-local, the first process of each node
prepares for its node. The others wait **on the file system** (``wait_for_entry``: the entry's
folder appears complete, by rename), never in a collective, so a preparation longer than
`launch.timeout_minutes` never times the job out; one waiting process per node says every minute
what it waits for. A preparation that fails leaves ``.<key>-<job token>.failed`` beside the
entries (``mark_failed``), and the waiting processes stop (``PreparedElsewhereFailed``, an echo of
the preparing rank's message, which that rank prints). With `data.cache: false` every process
prepares its own copy (nothing is shared).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tune.cache_dir import cache_root
from tune.config.schema import DataSection
from tune.data.report import DataReport
from tune.errors import UserError

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerFast

# Bump when preparation changes its output for the same inputs, or the entry's layout changes.
PIPELINE_VERSION = 5  # 5: train_lengths.npy and checksums.json in every entry
TRAIN_FILE, EVAL_FILE, REPORT_FILE = "train.arrow", "eval.arrow", "report.json"
LENGTHS_FILE, CHECKSUM_FILE = "train_lengths.npy", "checksums.json"
CHECKSUM_ALGORITHM = "xxh3_128"  # not adversarial: a fast hash that sees every byte is what is needed
HASH_CHUNK = 16 << 20
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


@dataclass(frozen=True)
class CachedEntry:
    """A complete, verified entry: the sets (memory-mapped), the stored report, and the padded
    lengths of the training samples in order (None with `packing: concat`)."""

    train: Dataset
    eval: Dataset
    report: DataReport
    train_lengths: np.ndarray | None


def load_cached(key: str, notify: Callable[[str], None]) -> CachedEntry | None:
    """The entry stored under ``key``, or None when there is none. An entry that fails its checksums
    (or cannot be read) is removed, ``notify`` is told why in one line, and None is returned: the
    caller prepares the data again."""
    folder = cache_dir(key)
    if not folder.exists():
        return None
    damage = verify_entry(folder)
    if damage is None:
        try:
            report = DataReport.from_dict(json.loads((folder / REPORT_FILE).read_text()))
            lengths = np.load(folder / LENGTHS_FILE) if (folder / LENGTHS_FILE).exists() else None
            train, eval_set = open_prepared(folder)
            return CachedEntry(train, eval_set, report, lengths)
        except Exception as err:  # checksums match, yet it does not read: written by a broken tune
            damage = f"unreadable: {type(err).__name__}: {err}"
    discard(folder)
    notify(f"data: the cached preparation {key} is damaged ({damage}); removed it, preparing the data again")
    return None


def verify_entry(folder: Path) -> str | None:
    """None when every file of the entry in ``folder`` matches ``checksums.json`` (sizes first, then
    digests of the whole files), else what is wrong, in words."""
    try:
        recorded = json.loads((folder / CHECKSUM_FILE).read_text())
        algorithm, files = recorded["algorithm"], recorded["files"]
    except FileNotFoundError:
        return f"no {CHECKSUM_FILE}"
    except (ValueError, KeyError, TypeError):
        return f"{CHECKSUM_FILE} is not readable"
    if algorithm != CHECKSUM_ALGORITHM or not isinstance(files, dict) or not all(
            isinstance(entry, dict) and Path(name).name == name for name, entry in files.items()):
        return f"{CHECKSUM_FILE} is not readable"
    for name in (TRAIN_FILE, EVAL_FILE, REPORT_FILE):
        if name not in files:
            return f"{CHECKSUM_FILE} does not list {name}"
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != expected.get("bytes"):
            return f"{name} holds {size} bytes, {expected.get('bytes')} were stored"
    for name, expected in files.items():
        if file_digest(folder / name) != expected.get("digest"):
            return f"{name} differs from what was stored ({CHECKSUM_ALGORITHM} checksum)"
    return None


def file_digest(path: Path) -> str:
    """The ``CHECKSUM_ALGORITHM`` hex digest of the file at ``path`` (read in chunks: flat memory)."""
    import xxhash  # a dependency of datasets (its own fingerprints use it)

    digest, buffer = xxhash.xxh3_128(), bytearray(HASH_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()


def write_checksums(folder: Path) -> None:
    """Record the size and digest of every file in ``folder`` in ``checksums.json`` (written last)."""
    files = {path.name: {"bytes": path.stat().st_size, "digest": file_digest(path)}
             for path in sorted(folder.iterdir()) if path.is_file() and path.name != CHECKSUM_FILE}
    (folder / CHECKSUM_FILE).write_text(json.dumps({"algorithm": CHECKSUM_ALGORITHM, "files": files}, indent=1))


def discard(folder: Path) -> None:
    """Remove the entry ``folder``: renamed aside first, then deleted, so that its name is free at
    once (a process storing the same key meanwhile never meets a half-deleted folder). Nothing
    happens when it is already gone."""
    aside = folder.parent / f".{folder.name}-discarded-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        folder.rename(aside)
    except OSError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def open_prepared(folder: Path) -> tuple[Dataset, Dataset]:
    """The train and eval sets written into ``folder`` (memory-mapped, nothing loaded)."""
    from datasets import Dataset

    return Dataset.from_file(str(folder / TRAIN_FILE)), Dataset.from_file(str(folder / EVAL_FILE))


def staging_dir(key: str) -> Path:
    """A new, private folder to build the entry ``key`` in (next to where it will live)."""
    parent = cache_dir(key).parent
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{key}-", dir=parent))


def store(staging: Path, key: str, report: DataReport, train_lengths: np.ndarray | None) -> Path:
    """Complete the entry built in ``staging`` (its train and eval files) with ``report``, the
    training samples' padded lengths (None with `packing: concat`) and the checksums of it all, and
    move it into place; the entry's folder. When another process stored the same key first, its
    entry is kept and ``staging`` removed."""
    (staging / REPORT_FILE).write_text(json.dumps(report.to_dict()))
    if train_lengths is not None:
        np.save(staging / LENGTHS_FILE, np.asarray(train_lengths, dtype=np.int64))
    write_checksums(staging)
    folder = cache_dir(key)
    try:
        staging.rename(folder)
    except OSError:
        if not (folder / CHECKSUM_FILE).exists():
            raise
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def remove_at_exit(folder: Path) -> None:
    """Delete ``folder`` when this process ends (prepared data that is not cached; the sets stay
    readable until then, memory-mapped)."""
    atexit.register(shutil.rmtree, folder, ignore_errors=True)


@dataclass(frozen=True)
class JobPreparation:
    """This process's part in preparing a job's data (module docstring): whether it ``prepares``;
    otherwise who does (``preparer``, in words: `rank 0`, `local rank 0 of node 1`) and whether it
    ``announces`` the wait (one waiting process per node). ``token`` is the job's, naming the
    failure file of this job only."""

    prepares: bool
    preparer: str
    token: str
    announces: bool = False


class PreparedElsewhereFailed(UserError):
    """The process preparing this job's data failed (it printed why); this one stops too."""

    echo = True  # tune.training.distributed.failures_agreed: the preparing rank's message is the one printed


_JOB: JobPreparation | None = None
WAIT_POLL_S = 1.0
WAIT_SAY_EVERY_S = 60.0


def set_job_preparation(job: JobPreparation | None) -> None:
    """Set this process's part in preparing the data (`tune run` does, after its preflight; None: alone)."""
    global _JOB
    _JOB = job


def job_preparation() -> JobPreparation | None:
    """This process's part in preparing the data, or None when it prepares alone (one process)."""
    return _JOB


def failure_file(key: str, job: JobPreparation) -> Path:
    return cache_root() / "data" / f".{key}-{job.token}.failed"


def mark_failed(key: str, job: JobPreparation, error: BaseException) -> None:
    """Leave the file that tells the waiting processes the preparation of ``key`` failed in this job."""
    path = failure_file(key, job)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{type(error).__name__}: {error}\n")
    except OSError:
        pass  # the waiting ranks then stop when the launcher ends the job


def clear_failure(key: str, job: JobPreparation) -> None:
    failure_file(key, job).unlink(missing_ok=True)


def wait_for_entry(key: str, job: JobPreparation, notify: Callable[[str], None] | None = None,
                   poll_s: float | None = None, say_every_s: float | None = None, done: Path | None = None) -> None:
    """Wait until the entry ``key`` is complete in the cache (module docstring), saying so through
    ``notify`` (stderr when None) when ``job.announces``: at once, then every ``say_every_s``
    seconds. Raises PreparedElsewhereFailed when the preparing process left its failure file.
    ``done`` is the file whose presence means complete (default: the entry's ``checksums.json``;
    tune.data.corpus_pipeline waits for its own entries' last file)."""
    notify = notify or (lambda line: print(line, file=sys.stderr, flush=True))
    poll_s = WAIT_POLL_S if poll_s is None else poll_s
    say_every_s = WAIT_SAY_EVERY_S if say_every_s is None else say_every_s
    folder, failed = cache_dir(key), failure_file(key, job)
    done = done or folder / CHECKSUM_FILE
    folder = done.parent
    started = time.monotonic()
    said = None
    while not done.is_file():
        if failed.exists():
            raise PreparedElsewhereFailed(f"data: the preparation of {key} by {job.preparer} failed "
                                          f"({failed.read_text().strip()})")
        waited = time.monotonic() - started
        if job.announces and (said is None or waited - said >= say_every_s):
            notify(f"data: waiting for {job.preparer} to prepare the data into {folder} ({waited:.0f} s so far; "
                   "it prints its progress; no timeout applies to this wait)")
            said = waited
        time.sleep(poll_s)
