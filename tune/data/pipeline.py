"""The one data pipeline every method trains through: sources -> records -> mixture -> samples -> sets, cached.

    for each dataset:  rows (card samples, local file/folder, or hub)   tune.data.sources
                       -> records, bad rows counted by reason          tune.data.conversion   (step 1)
    all datasets:      dedup, shuffle, max_rows, eval hold-out,
                       weights, as row numbers                         tune.data.mixture      (step 2)
    each used row:     render + tokenize + fit to max_seq_len          tune.data.build_samples    (step 3)
                       by the data kind's SampleBuilder:               tune.data.conversation_samples (sft)
                                                                       tune.data.preference_samples (preference)
    train / eval:      samples in mixture order, report counts         tune.data.assembly     (step 4)
                       with `packing: concat`, cut into windows        tune.data.concat_windows
    cache:             keyed by what shapes the result, checksummed    tune.data.cache

Rows stream through Arrow files at every step, so memory stays flat as the corpus grows;
`data.num_proc` renders in several processes with byte-identical output; progress (rows/s, ETA)
is shown per dataset while a step runs long (tune.data.preparation_progress).

The builder is the one for the kind of data the recipe's method trains on (tune.config.methods).
Refuses with a UserError: a dataset of another kind, the first bad row when `data.on_bad_row:
error` (naming file and row), options the builder refuses (DPO and `data.packing`), a record the
template refuses, and a mixture with no sample left.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from tune.config.methods import METHODS
from tune.config.schema import DataSection, Recipe
from tune.data import cache
from tune.data.assembly import assemble
from tune.data.conversation_samples import CONVERSATION_SAMPLES
from tune.data.conversion import convert_source, read_keys
from tune.data.converters import get_converter
from tune.data.converters.base import Converter
from tune.data.mixture import build_mixture
from tune.data.prepared import PreparedData
from tune.data.preference_samples import PREFERENCE_SAMPLES
from tune.data.preparation_progress import Progress
from tune.data.build_samples import build_samples
from tune.data.concat_windows import write_windows
from tune.data.report import DataReport, DatasetStats
from tune.data.sample_builder import SampleBuilder
from tune.data.sources import Source, open_source
from tune.errors import UserError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

# The sample builder of each kind of data a method trains on (METHODS' `data_kind`).
BUILDERS: dict[str, SampleBuilder] = {builder.kind: builder for builder in (CONVERSATION_SAMPLES, PREFERENCE_SAMPLES)}


def builder_for(recipe: Recipe) -> SampleBuilder:
    """The sample builder for the kind of data ``recipe``'s method trains on."""
    return BUILDERS[METHODS[recipe.method.name].data_kind]


def prepare_data(recipe: Recipe, tokenizer: PreTrainedTokenizerFast, builder: SampleBuilder | None = None,
                 printer: Callable[[str], None] | None = None,
                 job: cache.JobPreparation | None = None) -> PreparedData:
    """The recipe's training and eval sets, from the cache when an identical preparation exists
    (see the module docstring). ``builder`` defaults to the one of the method's kind of data.
    A cached entry that fails its checksums is removed and prepared again, saying so through
    ``printer`` (stderr when None); a cached report's unpacked padding figure is recomputed for
    this recipe's batch size. In a job of several processes (``job``, default
    ``cache.job_preparation()``), a process that does not prepare waits for the preparing one's
    cache entry on the file system first (tune.data.cache: ``wait_for_entry``), and a preparing
    process that fails leaves the file that stops the waiting ones."""
    data = recipe.data
    job = job or cache.job_preparation()
    builder = builder or builder_for(recipe)
    builder.check_options(data)
    sources, converters = open_sources(data, builder)
    parts = [{**part, **builder.key_part()} for part in source_key_parts(sources, converters)]
    key = cache.cache_key(data, recipe.train.seed, parts, cache.tokenizer_fingerprint(tokenizer))
    if data.cache and job is not None and not job.prepares:
        cache.wait_for_entry(key, job)  # on stderr: the waiting ranks' printer is silent
    if data.cache:
        hit = cache.load_cached(key, printer or _to_stderr)
        if hit is not None:
            if hit.train_lengths is not None:
                refresh_padding(hit.report, builder, hit.train_lengths, recipe)
            return PreparedData(hit.train, hit.eval, hit.report, key=key, from_cache=True)
    staging = cache.staging_dir(key)
    try:
        report, train_lengths = _build(recipe, tokenizer, builder, sources, converters, staging)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if data.cache and job is not None and job.prepares:
            cache.mark_failed(key, job, error)
        raise
    if data.cache:
        try:
            folder = cache.store(staging, key, report, train_lengths)
        except BaseException as error:
            if job is not None and job.prepares:
                cache.mark_failed(key, job, error)
            raise
    else:
        folder = staging
        cache.remove_at_exit(folder)
    train, eval_set = cache.open_prepared(folder)
    return PreparedData(train, eval_set, report, key, from_cache=False)


def refresh_padding(report: DataReport, builder: SampleBuilder, train_lengths: np.ndarray, recipe: Recipe) -> None:
    """Set ``report``'s unpacked padding figure for ``recipe``'s batch size (not in the cache key)
    from the stored padded lengths of the training samples. The packing figures depend only on the
    lengths and `data.max_seq_len`, both in the key, so the stored ones stand (and TRL's packing,
    seconds per million samples, is not run again)."""
    unpacked = recipe.model_copy(update={"data": recipe.data.model_copy(update={"packing": "none"})})
    figures = DataReport()
    builder.add_padding_figures(figures, train_lengths, unpacked)
    report.padding_fraction = figures.padding_fraction


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _build(recipe: Recipe, tokenizer, builder: SampleBuilder, sources: list[Source], converters: list[Converter],
           folder) -> tuple[DataReport, np.ndarray | None]:
    """Steps 1-4 of the module docstring into ``folder``; the report and the padded lengths of the
    training samples in order (None with `packing: concat`: windows are never padded)."""
    data = recipe.data
    work = folder / "work"
    work.mkdir()
    stats = [DatasetStats(source.label) for source in sources]
    converted = [
        convert_source(source, converter, stat, data.on_bad_row, work / f"records-{index}.arrow",
                       Progress(f"reading {source.label}", source.total_rows))
        for index, (source, converter, stat) in enumerate(zip(sources, converters, stats))
    ]
    mixture = build_mixture([read_keys(c) for c in converted], stats, data, recipe.train.seed)
    built = build_samples(converted, mixture, builder, tokenizer, data, [s.label for s in stats], work, data.num_proc)
    concat = data.packing == "concat"
    train_path, eval_path = folder / cache.TRAIN_FILE, folder / cache.EVAL_FILE
    sets = assemble(mixture, built, builder, stats, work / "train-samples.arrow" if concat else train_path,
                    work / "eval-samples.arrow" if concat else eval_path)
    report = DataReport(stats, eval_samples=sets.eval_samples)
    if concat:
        train_windows = write_windows(work / "train-samples.arrow", train_path, data.max_seq_len)
        eval_windows = write_windows(work / "eval-samples.arrow", eval_path, data.max_seq_len)
        report.add_windows(train_windows, eval_windows.kept)
    shutil.rmtree(work)
    if not (report.windows if concat else sets.train_samples):
        raise UserError(f"data: {builder.none_left} after preparation:\n" + "\n".join(report.lines()))
    if concat:
        report.padding_fraction = 0.0  # every window is max_seq_len + 1 tokens
        return report, None
    builder.add_padding_figures(report, sets.train_lengths, recipe)
    return report, sets.train_lengths


def open_sources(data: DataSection, builder: SampleBuilder) -> tuple[list[Source], list[Converter]]:
    """The sources of ``data.datasets`` and their converters, fields resolved. Refuses with a
    UserError naming `data.datasets.N`: fields the converter cannot map, or rows of another kind
    than ``builder`` takes."""
    sources = [open_source(entry) for entry in data.datasets]
    converters = [get_converter(source.converter) for source in sources]
    for index, (source, converter) in enumerate(zip(sources, converters)):
        try:
            source.fields = converter.resolve_fields(source.fields)
        except ValueError as err:
            raise UserError(f"data.datasets.{index}.fields: {err}") from None
        if converter.kind != builder.kind:
            raise UserError(f"data.datasets.{index}: {source.label} holds {converter.kind} rows; "
                            f"this preparation takes {builder.kind} rows: {builder.takes}")
    return sources, converters


def source_key_parts(sources: list[Source], converters: list[Converter]) -> list[dict]:
    """What each source adds to the cache key: converter name, version and fields, the source's fingerprint."""
    return [{"converter": c.name, "version": c.version, "fields": s.fields, "source": s.fingerprint}
            for s, c in zip(sources, converters)]
