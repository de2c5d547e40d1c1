"""Pipeline step 3, build samples: every record the mixture uses, rendered once into a fitted sample, in several processes.

For each dataset, the rows the mixture uses (train and eval, each distinct row once: an upsampled
row is the same sample again) are read back from step 1 in row order, in chunks of
``SAMPLE_BATCH`` records, and handed to the data kind's SampleBuilder: render, tokenize, fit to
`data.max_seq_len`. With `data.num_proc` > 1 the chunks go to worker processes; results come back
in chunk order, at most two chunks per worker in flight, so the output is byte-identical whatever
the number of processes and memory stays flat. A sample the builder finds too long to fit in
any tokenization is dropped untokenized, counted as over-long like the others (SampleBuilder.build).
The samples go to one token-runs file
(tune.data.token_runs; a dropped sample keeps its place, empty); the small per-sample figures (fit
flags, tokens, supervised tokens, padded lengths) stay in memory for step 4.
"""

from __future__ import annotations

import multiprocessing
from array import array
import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tune.config.schema import DataSection
from tune.data.conversion import ConvertedSource, read_records
from tune.data.mixture import Mixture
from tune.data.preparation_progress import Progress
from tune.data.records import record_from_json
from tune.data.sample_builder import DROPPED_OVERLONG, SampleBuilder
from tune.data.token_runs import TokenRuns, TokenRunsWriter

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

SAMPLE_BATCH = 512
# One rendered sample: its column values (empty when dropped), fit flags, tokens, supervised tokens, padded lengths.
Rendered = tuple[tuple, int, int, int, tuple[int, ...]]


@dataclass
class BuiltSamples:
    """The samples of every row the mixture uses, in ascending global id (see tune.data.mixture):
    their token ids in ``runs``, and per sample its figures as arrays."""

    runs: TokenRuns
    ids: np.ndarray  # int64, sorted
    flags: np.ndarray  # int8, tune.data.sample_builder's fit flags
    tokens: np.ndarray  # int64
    supervised: np.ndarray  # int64
    lengths: np.ndarray  # int64 [samples, sequences per sample]


def build_samples(converted: list[ConvertedSource], mixture: Mixture, builder: SampleBuilder,
                   tokenizer: PreTrainedTokenizerFast, data: DataSection, labels: list[str], folder: Path,
                   num_proc: int = 1) -> BuiltSamples:
    """Render the rows ``mixture`` uses into ``folder`` (see the module docstring)."""
    ids = np.unique(np.concatenate([mixture.train, mixture.eval]))
    flags, tokens, supervised, lengths = array("b"), array("q"), array("q"), array("q")
    writer = TokenRunsWriter(folder / "samples.bin", len(builder.schema) - 1)
    try:
        with _chunk_runner(builder, tokenizer, data, num_proc) as run:
            for index, source in enumerate(converted):
                start, end = mixture.offsets[index], mixture.offsets[index + 1]
                rows = ids[(ids >= start) & (ids < end)] - start
                progress = Progress(f"rendering {labels[index]}", len(rows))
                try:
                    for chunk in run(_chunks(source, rows, labels[index])):
                        for values, sample_flags, sample_tokens, sample_supervised, sample_lengths in chunk:
                            writer.append(values)
                            flags.append(sample_flags)
                            tokens.append(sample_tokens)
                            supervised.append(sample_supervised)
                            lengths.extend(sample_lengths)
                        progress.advance(len(chunk))
                finally:
                    progress.close()
    finally:
        runs = writer.close()
    width = len(lengths) // len(flags) if len(flags) else 1
    return BuiltSamples(runs, ids, np.array(flags, dtype=np.int8), np.array(tokens, dtype=np.int64),
                        np.array(supervised, dtype=np.int64), np.array(lengths, dtype=np.int64).reshape(-1, width))


def _chunks(source: ConvertedSource, rows: np.ndarray, label: str) -> Iterator[tuple[str, list[str]]]:
    chunk: list[str] = []
    for _, text in read_records(source, rows):
        chunk.append(text)
        if len(chunk) == SAMPLE_BATCH:
            yield label, chunk
            chunk = []
    if chunk:
        yield label, chunk


# The builder, tokenizer and data options of this process's chunks (set in workers by _start_worker).
_WORKER: dict = {}


def _start_worker(builder: SampleBuilder, tokenizer: PreTrainedTokenizerFast, data: DataSection) -> None:
    _WORKER.update(builder=builder, tokenizer=tokenizer, data=data)


def _render_chunk(task: tuple[str, list[str]]) -> list[Rendered]:
    """Build and fit the samples of one chunk of records (JSON texts) of the dataset ``label``."""
    label, texts = task
    builder, data = _WORKER["builder"], _WORKER["data"]
    samples = builder.build(_WORKER["tokenizer"], [record_from_json(text) for text in texts], data, label)
    out = []
    for sample in samples:
        # None: too long to fit in any tokenization, dropped untokenized (SampleBuilder.build)
        fitted, flags = (None, DROPPED_OVERLONG) if sample is None else builder.fit(sample, data)
        if fitted is None:
            out.append((tuple([] for _ in builder.schema.names[:-1]), flags, 0, 0, (0,) * builder.sequences))
        else:
            out.append((builder.row(fitted), flags, builder.tokens(fitted), builder.supervised(fitted),
                        builder.padded_lengths(fitted)))
    return out


class _chunk_runner:
    """``run(tasks)`` yields ``_render_chunk`` of each task, in order: in this process, or in
    ``num_proc`` workers with at most two tasks per worker in flight."""

    def __init__(self, builder: SampleBuilder, tokenizer, data: DataSection, num_proc: int) -> None:
        self.args, self.num_proc, self.pool = (builder, tokenizer, data), num_proc, None

    def __enter__(self) -> Callable[[Iterator], Iterator[list[Rendered]]]:
        if self.num_proc <= 1:
            _start_worker(*self.args)
            return lambda tasks: map(_render_chunk, tasks)
        # the tokenizer's own thread pool and forked workers do not mix (tokenizers warns and may deadlock)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.pool = context.Pool(self.num_proc, initializer=_start_worker, initargs=self.args)
        return self._ordered

    def _ordered(self, tasks: Iterator) -> Iterator[list[Rendered]]:
        pending: deque = deque()
        for task in tasks:
            pending.append(self.pool.apply_async(_render_chunk, (task,)))
            if len(pending) >= 2 * self.num_proc:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    def __exit__(self, *exc) -> None:
        _WORKER.clear()
        if self.pool is not None:
            self.pool.terminate() if exc[0] else self.pool.close()
            self.pool.join()
