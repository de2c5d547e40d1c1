"""The data of method `cpt`: pre-tokenized corpora -> Megatron's GPT windows -> blend, cached, no collective.

    each corpus        `.idx` header read and checked (tune.data.corpus_index); its tune manifest,
                       when there is one, must name this tokenizer; its dtype must hold the vocabulary
    blend              weights = tokens x repeat normalized, or the shares; planned samples = planned
                       steps x global batch (tune.data.corpus_blend)
    Megatron indices   GPTDataset per corpus and BlendedDataset over them, built by Megatron-Core's
                       own code into the cache (tune.data.corpus_megatron); held-out and eval-only
                       corpora as one-epoch GPTDatasets
    sets               ``train``: the first planned-samples windows of the blend, in Megatron's order;
                       ``eval``: per corpus name, at most `data.eval_samples` held-out windows
                       (tune.data.corpus_windows)

The order of ``train`` is a function of the corpora (their index files), weights, `data.max_seq_len`,
`train.seed`, the planned samples and the splits only: not of the number of processes or of this
process's rank. Changing what the planned samples depend on (`train.max_steps`, the global batch,
`train.epochs`) gives another order, as it would in Megatron.

The cache entry ``$TUNE_CACHE/corpora/<key>/`` holds Megatron's index files (``megatron/``) and
``entry.json`` (the files' sizes and the figures of the report), written last; it is built in a
hidden staging folder beside it and renamed into place, so a crash never leaves half an entry. The
key covers the prefixes and their files' sizes and modification times, the weights, the splits,
the eval corpora, the sequence length, the seed, the planned samples and the tokenizer's EOD id and
vocabulary size. An entry whose files do not match ``entry.json`` is removed and built again.

Many processes (tune.data.cache.JobPreparation): the preparing process builds the entry; the others
wait for its ``entry.json`` on the file system (``wait_for_entry``), then open it; a failure of the
preparing process leaves the failure file that stops them. No collective runs here.

Refuses with a UserError naming the recipe key (``data.corpora.N.prefix`` or
``data.eval_corpora.N.prefix``): a missing or damaged corpus file, a corpus whose tune manifest names
another tokenizer, an `.idx` whose dtype cannot hold the vocabulary, a tokenizer without an EOS id,
`train.epochs` with shares.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tune.cache_dir import cache_root
from tune.config.schema import Recipe
from tune.data import cache
from tune.data.corpus_blend import blend_weights, corpus_names, global_batch, planned_steps
from tune.data.corpus_index import CorpusIndex, read_index
from tune.data.corpus_report import CorpusFigures, CorpusReport, EvalCorpusFigures
from tune.data.corpus_windows import CorpusWindows
from tune.errors import UserError

# Bump when the entry's layout or what is built for the same inputs changes.
CORPUS_PIPELINE_VERSION = 1
ENTRY_FILE = "entry.json"
MEGATRON_DIR = "megatron"


@dataclass
class CorpusData:
    """A cpt run's data (module docstring): ``train`` (len = planned samples; item i = sample i of the
    global blended order), ``eval`` (corpus name -> held-out windows; {} when nothing is held out),
    the ``report``, the cache ``key``, whether Megatron's indices were already built
    (``from_cache``), and the planned optimizer ``steps``."""

    train: CorpusWindows
    eval: dict[str, CorpusWindows]
    report: CorpusReport
    key: str
    from_cache: bool
    steps: int


def prepare_corpora(recipe: Recipe, tokenizer, printer: Callable[[str], None] | None = None,
                    job: cache.JobPreparation | None = None) -> CorpusData:
    """The training and eval windows of ``recipe``'s corpora (module docstring). ``tokenizer`` gives
    the EOD id (its EOS, the id `tune data tokenize` and LLM-jp append after each document) and the
    vocabulary size (``len``). ``job`` defaults to ``cache.job_preparation()``; ``printer`` (stderr
    when None) hears about a damaged entry rebuilt."""
    from tune.data.corpus_megatron import BlendSpec, corpus_split

    data = recipe.data
    job = job or cache.job_preparation()
    notify = printer or _to_stderr
    vocab, eod = len(tokenizer), getattr(tokenizer, "eos_token_id", None)
    if eod is None:
        raise UserError("model.tokenizer: the tokenizer has no EOS token; cpt windows need the end-of-document id "
                        "the corpora were tokenized with")
    indices = _checked_indices(recipe, tokenizer, vocab)
    eval_indices = _checked_indices(recipe, tokenizer, vocab, eval_only=True)
    tokens = [index.tokens for index in indices]
    weights = blend_weights(recipe, tokens)
    steps = planned_steps(recipe, tokens)
    batch = global_batch(recipe)
    spec = BlendSpec(
        prefixes=tuple(index.prefix for index in indices), weights=tuple(weights),
        splits=tuple(corpus_split(data.eval_fraction, index.sequences) for index in indices),
        eval_prefixes=tuple(index.prefix for index in eval_indices), train_samples=steps * batch,
        seq_len=data.max_seq_len, seed=recipe.train.seed, eod=int(eod), vocab_size=vocab)
    key = corpus_key(spec, indices + eval_indices)
    folder = entry_dir(key)
    if job is not None and not job.prepares:
        cache.wait_for_entry(key, job, done=folder / ENTRY_FILE)
    entry = open_entry(folder, notify)
    from_cache = entry is not None
    if entry is None:
        try:
            entry = _build_entry(spec, key, folder)
        except BaseException as error:
            if job is not None and job.prepares:
                cache.mark_failed(key, job, error)
            raise
    return _open_sets(recipe, spec, entry, folder, indices, eval_indices, key, from_cache, steps, batch)


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _checked_indices(recipe: Recipe, tokenizer, vocab: int, eval_only: bool = False) -> list[CorpusIndex]:
    """The `.idx` of every corpus (or eval corpus), each checked: readable, its dtype holds ``vocab``
    ids, its manifest (if any) names ``tokenizer``."""
    section = "eval_corpora" if eval_only else "corpora"
    entries = recipe.data.eval_corpora if eval_only else recipe.data.corpora
    indices = []
    for number, entry in enumerate(entries):
        key = f"data.{section}.{number}.prefix"
        index = read_index(entry.prefix, key)
        index.check_vocab(vocab, key)
        check_manifest(entry.prefix, tokenizer, key)
        indices.append(index)
    return indices


def check_manifest(prefix: str, tokenizer, key: str) -> None:
    """Refuse (UserError naming ``key``) a corpus whose `PREFIX.manifest.json` (written by `tune data
    tokenize`) records another tokenizer fingerprint than ``tokenizer``'s. No manifest: no check
    (LLM-jp's own corpora have none)."""
    path = Path(f"{prefix}.manifest.json")
    if not path.is_file():
        return
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))["tokenizer"]["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{key}: {path} is not a readable tune manifest (no tokenizer.fingerprint); "
                        "tokenize the corpus again or remove the file") from None
    if recorded != cache.tokenizer_fingerprint(tokenizer):
        raise UserError(f"{key}: {prefix} was tokenized with another tokenizer than this recipe's (its manifest "
                        f"{path} records fingerprint {str(recorded)[:12]}...): token ids would mean other text; "
                        "tokenize it again with this model (`tune data tokenize --recipe RECIPE`)")


def corpus_key(spec, indices: list[CorpusIndex]) -> str:
    """The cache key of a preparation (module docstring): 24 hex digits."""
    files = []
    for index in indices:
        stats = [os.stat(path) for path in (index.idx_path, index.bin_path)]
        files.append({"prefix": index.prefix, "sizes": [s.st_size for s in stats], "mtimes": [s.st_mtime_ns for s in stats]})
    payload = {"pipeline": CORPUS_PIPELINE_VERSION, "files": files, "weights": list(spec.weights),
               "splits": list(spec.splits), "eval": list(spec.eval_prefixes), "samples": spec.train_samples,
               "seq_len": spec.seq_len, "seed": spec.seed, "eod": spec.eod, "vocab": spec.vocab_size}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def entry_dir(key: str) -> Path:
    return cache_root() / "corpora" / key


def open_entry(folder: Path, notify: Callable[[str], None]) -> dict | None:
    """The entry's ``entry.json`` when every file it lists is there with its size; None when there is
    no entry; a damaged one is removed (saying so through ``notify``) and None returned."""
    try:
        entry = json.loads((folder / ENTRY_FILE).read_text())
    except FileNotFoundError:
        if folder.exists():
            cache.discard(folder)  # no entry.json: never completed (renamed only once complete, so unexpected)
        return None
    except ValueError:
        entry = None
    damage = "entry.json is not readable" if entry is None else _damage(folder, entry)
    if damage is None:
        return entry
    cache.discard(folder)
    notify(f"data: the cached corpus indices {folder.name} are damaged ({damage}); removed them, building them again")
    return None


def _damage(folder: Path, entry: dict) -> str | None:
    files = entry.get("files")
    if not isinstance(files, dict) or not files:
        return "entry.json lists no files"
    for name, size in files.items():
        path = folder / MEGATRON_DIR / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} holds {path.stat().st_size} bytes, {size} were stored"
    return None


def _build_entry(spec, key: str, folder: Path) -> dict:
    """Build Megatron's indices for ``spec`` in a staging folder, record the report's figures in
    ``entry.json`` and move the entry into place; its ``entry.json``."""
    from tune.data.corpus_megatron import build_blend

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder.parent))
    try:
        built = build_blend(spec, str(staging / MEGATRON_DIR))
        drawn = np.bincount(np.asarray(built.train.dataset_index[:spec.train_samples]), minlength=len(spec.prefixes))
        entry = {
            "files": {path.name: path.stat().st_size for path in sorted((staging / MEGATRON_DIR).iterdir())},
            "drawn": [int(count) for count in drawn],
            "train_ranges": [list(bounds) for bounds in built.train_ranges],
            "held_out_ranges": [None if bounds is None else list(bounds) for bounds in built.held_out_ranges],
            "held_out_windows": [0 if held is None else len(held) for held in built.held_out],
            "eval_windows": [len(dataset) for dataset in built.eval_corpora],
            "train_tokens": [int(dataset.dataset.sequence_lengths[begin:end].sum(dtype=np.int64))
                             for dataset, (begin, end) in zip(built.train.datasets, built.train_ranges)],
        }
        del built
        (staging / ENTRY_FILE).write_text(json.dumps(entry, indent=1))
        try:
            staging.rename(folder)
        except OSError:
            if not (folder / ENTRY_FILE).is_file():
                raise
            shutil.rmtree(staging, ignore_errors=True)  # another process stored the same key first
            return json.loads((folder / ENTRY_FILE).read_text())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return entry


def _open_sets(recipe: Recipe, spec, entry: dict, folder: Path, indices: list[CorpusIndex],
               eval_indices: list[CorpusIndex], key: str, from_cache: bool, steps: int, batch: int) -> CorpusData:
    """Open the entry's indices (memory-mapped) and wrap them as the run's sets and report."""
    from tune.data.corpus_megatron import build_blend

    data = recipe.data
    built = build_blend(spec, str(folder / MEGATRON_DIR))  # every index file is there: loaded, not built
    names = corpus_names([*data.corpora, *data.eval_corpora])
    train_names, eval_names = names[:len(data.corpora)], names[len(data.corpora):]
    train = CorpusWindows(built.train, 0, spec.train_samples)
    evals: dict[str, CorpusWindows] = {}
    figures = []
    for number, (name, entry_, index) in enumerate(zip(train_names, data.corpora, indices)):
        held, bounds = built.held_out[number], entry["held_out_ranges"][number]
        windows = 0 if held is None else min(data.eval_samples, len(held))
        if windows:
            evals[name] = CorpusWindows(held, 0, windows)
        figures.append(CorpusFigures(
            name=name, prefix=index.prefix, documents=index.documents, tokens=index.tokens,
            train_tokens=entry["train_tokens"][number], repeat=entry_.repeat, share=entry_.share,
            target=spec.weights[number], drawn=entry["drawn"][number],
            held_out_documents=0 if bounds is None else bounds[1] - bounds[0], held_out_windows=windows))
    eval_figures = []
    for name, dataset, index in zip(eval_names, built.eval_corpora, eval_indices):
        windows = min(data.eval_samples, len(dataset))
        if windows:
            evals[name] = CorpusWindows(dataset, 0, windows)
        eval_figures.append(EvalCorpusFigures(name, index.prefix, index.documents, index.tokens, windows))
    report = CorpusReport(figures, data.max_seq_len, recipe.train.seed, steps, batch, eval_figures)
    return CorpusData(train, evals, report, key, from_cache, steps)
