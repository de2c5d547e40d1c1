"""Prepare a recipe's SFT data: sources -> records -> mixture -> ids + labels, cached, with a report.

    for each dataset:   rows (card samples, local file/folder, or hub)  -- tune.data.sources
                        -> canonical records, bad rows counted by reason -- tune.data.converters
    all datasets:       dedup, shuffle, max_rows, eval hold-out, weights -- tune.data.mixture
    each sample:        render with the template, assistant-only labels  -- tune.data.render
                        -> drop/truncate over max_seq_len, drop unsupervised (counted)
    cache:              keyed by what shapes the result                  -- tune.data.cache

Refuses with a UserError: a dataset of the wrong kind for SFT (preference or text), the first bad
row when `data.on_bad_row: error` (naming file and row), a conversation the template refuses,
and a mixture with no trainable sample left.
"""

from __future__ import annotations

from dataclasses import dataclass

from tune.config.schema import Recipe
from tune.data import cache
from tune.data.chat_masks import IGNORE_INDEX, LabelledSample, TemplateMaskError
from tune.data.mixture import build_mixture
from tune.data.records import BadRow, Conversation, record_key
from tune.data.render import render_text, tokenize_texts
from tune.data.report import DataReport, DatasetStats
from tune.data.sources import open_source
from tune.errors import UserError

TOKENIZE_BATCH = 512


@dataclass
class PreparedData:
    train: object  # datasets.Dataset: input_ids, labels, dataset (index into data.datasets)
    eval: object
    report: DataReport
    key: str
    from_cache: bool


def prepare_sft_data(recipe: Recipe, tokenizer) -> PreparedData:
    """The recipe's training and eval samples (from the cache when an identical preparation exists)."""
    data = recipe.data
    sources, converters = open_sources(data, "sft", "method sft trains on conversations (sft cards or formats)")
    key = cache.cache_key(data, recipe.train.seed, source_key_parts(sources, converters), cache.tokenizer_fingerprint(tokenizer))
    if data.cache:
        hit = cache.load_cached(key)
        if hit is not None:
            return PreparedData(*hit, key=key, from_cache=True)

    stats = [DatasetStats(source.label) for source in sources]
    records = [_convert(source, converter, stat, data.on_bad_row) for source, converter, stat in zip(sources, converters, stats)]
    mixture = build_mixture(records, stats, data, recipe.train.seed)
    train = _render_all(tokenizer, mixture.train, data, stats, count=True)
    eval_rows = _render_all(tokenizer, mixture.eval, data, stats, count=False)
    if not train["input_ids"]:
        raise UserError("data: no trainable sample left after preparation:\n" + "\n".join(DataReport(stats).lines()))
    report = DataReport(stats, eval_samples=len(eval_rows["input_ids"]))
    _add_padding_figures(report, train["input_ids"], recipe)

    from datasets import Dataset

    train_set, eval_set = Dataset.from_dict(train), Dataset.from_dict(eval_rows)
    if data.cache:
        cache.store(key, train_set, eval_set, report)
    return PreparedData(train_set, eval_set, report, key, from_cache=False)


def open_sources(data, kind: str, expected: str) -> tuple[list, list]:
    """The sources of ``data.datasets`` and their converters, fields resolved. Refuses with a
    UserError naming `data.datasets.N`: fields the converter cannot map, or rows of another
    ``kind`` than the method trains on (``expected`` says what it does train on)."""
    from tune.data.converters import get_converter

    sources = [open_source(entry) for entry in data.datasets]
    converters = [get_converter(source.converter) for source in sources]
    for index, (source, converter) in enumerate(zip(sources, converters)):
        try:
            source.fields = converter.resolve_fields(source.fields)
        except ValueError as err:
            raise UserError(f"data.datasets.{index}.fields: {err}") from None
        if converter.kind != kind:
            raise UserError(f"data.datasets.{index}: {source.label} holds {converter.kind} rows; {expected}")
    return sources, converters


def source_key_parts(sources, converters, **extra) -> list[dict]:
    """What each source adds to the cache key: converter name, version and fields, the source's
    fingerprint, plus ``extra`` (a pipeline's own name and version)."""
    return [{"converter": c.name, "version": c.version, "fields": s.fields, "source": s.fingerprint, **extra}
            for s, c in zip(sources, converters)]


def _convert(source, converter, stats: DatasetStats, on_bad_row: str) -> list[Conversation]:
    records = []
    for location, row in source.rows():
        stats.rows_read += 1
        try:
            if isinstance(row, BadRow):
                raise row
            records.append(converter.convert(row, source.fields))
        except BadRow as bad:
            if on_bad_row == "error":
                raise UserError(
                    f"{location}: bad row ({bad.reason}): {bad.detail}; fix it, or set data.on_bad_row=skip "
                    "to skip such rows (they are counted and reported)"
                ) from None
            stats.add_bad_row(bad.reason, location, bad.detail)
    return records


def _render_all(tokenizer, rows, data, stats: list[DatasetStats], count: bool) -> dict:
    """Ids + labels for every (dataset index, record) row. Each distinct record is rendered once
    (an upsampled row is the same sample again) and tokenized in batches."""
    labelled = {}
    pending_keys, pending_texts = [], []
    keys = []
    for index, record in rows:
        key = record_key(record)
        keys.append(key)
        if key in labelled:
            continue
        labelled[key] = None
        pending_keys.append(key)
        pending_texts.append(render_or_refuse(tokenizer, record, data, stats[index].label))
        if len(pending_keys) == TOKENIZE_BATCH:
            labelled.update(zip(pending_keys, tokenize_texts(tokenizer, pending_texts, data)))
            pending_keys, pending_texts = [], []
    labelled.update(zip(pending_keys, tokenize_texts(tokenizer, pending_texts, data)))
    columns = {"input_ids": [], "labels": [], "dataset": []}
    for (index, _), key in zip(rows, keys):
        sample = _fit(labelled[key], data, stats[index] if count else None)
        if sample is None:
            continue
        columns["input_ids"].append(sample.input_ids)
        columns["labels"].append(sample.labels)
        columns["dataset"].append(index)
        if count:
            stats[index].samples += 1
            stats[index].tokens += len(sample.input_ids)
            stats[index].supervised_tokens += sample.supervised_tokens
    return columns


def render_or_refuse(tokenizer, record, data, label: str, render=None, what: str = "a conversation"):
    """``render(tokenizer, record, data)`` (default: SFT's render_text); a template that cannot be
    masked or that raises its own exception becomes a UserError naming the dataset ``label``."""
    try:
        return (render or render_text)(tokenizer, record, data)
    except TemplateMaskError as err:
        raise UserError(f"{label}: {err}") from None
    except Exception as err:  # the template's own raise_exception checks
        if type(err).__name__ != "TemplateError":
            raise
        raise UserError(f"{label}: the chat template refused {what}: {err}") from None


def _fit(sample: LabelledSample, data, stats: DatasetStats | None) -> LabelledSample | None:
    """``sample`` within max_seq_len (or None, counted, when it must be dropped)."""
    if len(sample.input_ids) > data.max_seq_len:
        if data.overlong == "drop":
            if stats:
                stats.dropped_overlong += 1
            return None
        if stats:
            stats.truncated += 1
        sample = LabelledSample(sample.input_ids[: data.max_seq_len], sample.labels[: data.max_seq_len])
    if all(label == IGNORE_INDEX for label in sample.labels):
        if stats:
            stats.dropped_unsupervised += 1
        return None
    return sample


def _add_padding_figures(report: DataReport, input_ids: list[list[int]], recipe: Recipe) -> None:
    from tune.data.packing import packing_summary, padding_fraction

    lengths = [len(ids) for ids in input_ids]
    batch = recipe.train.per_device_batch_size
    report.padding_fraction = padding_fraction(lengths, recipe.data.max_seq_len, batch, packed=False)
    if recipe.data.packing:
        report.packed_padding_fraction = padding_fraction(lengths, recipe.data.max_seq_len, batch, packed=True)
        report.packed_fill = 1 - packing_summary(lengths, recipe.data.max_seq_len).unused_tail_fraction
