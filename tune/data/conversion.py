"""Pipeline step 1: a source's rows converted to canonical records, streamed to an Arrow file.

Each row goes through the source's converter (tune.data.converters) and becomes one record,
written as JSON (``record_json``) with its 16-byte duplicate key (``record_digest``), in source
order; the shape the converter found each row in is counted in the dataset's stats (``shapes``,
the converter's usual shape as ``default_shape``). Bad rows never vanish: with
``data.on_bad_row: skip`` each is counted by reason in the dataset's stats, the first few with
their location (``file:line N`` for .jsonl, ``file:row N`` otherwise); with ``error`` the first
one stops preparation with a UserError naming it. What a file row cannot be (not UTF-8, an integer
Python cannot read, nesting too deep, a lone surrogate) is a bad row from tune.data.rows; a record
that still holds a lone surrogate (a row from the Hub's `datasets`) is one here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from tune.data.arrow_files import BatchWriter, read_batches
from tune.data.converters.base import Converter
from tune.data.json_text import lone_surrogate_detail
from tune.data.preparation_progress import Progress
from tune.data.records import BadRow, record_digest, record_json
from tune.data.report import DatasetStats
from tune.data.sources import Source
from tune.errors import UserError

RECORDS_SCHEMA = pa.schema([("record", pa.large_string()), ("key", pa.binary(16))])
KEY_DTYPE = np.dtype("V16")


@dataclass(frozen=True)
class ConvertedSource:
    """The records of one source: an Arrow file of ``count`` rows (``record`` JSON, ``key``), in source order."""

    path: Path
    count: int


def convert_source(source: Source, converter: Converter, stats: DatasetStats, on_bad_row: str, path: Path,
                   progress: Progress | None = None) -> ConvertedSource:
    """Convert every row of ``source`` into ``path``; bad rows are counted in ``stats`` (module docstring).

    Refuses (UserError) the first bad row when ``on_bad_row`` is ``error``.
    """
    writer = BatchWriter(path, RECORDS_SCHEMA)
    stats.default_shape = converter.shapes[0]
    try:
        for location, row in source.rows():
            stats.rows_read += 1
            if progress is not None:
                progress.advance(1)
            try:
                if isinstance(row, BadRow):
                    raise row
                converted = converter.read(row, source.fields)
                key = _record_key(converted.record)
            except BadRow as bad:
                if on_bad_row == "error":
                    raise UserError(
                        f"{location}: bad row ({bad.reason}): {bad.detail}; fix it, or set data.on_bad_row=skip "
                        "to skip such rows (they are counted and reported)"
                    ) from None
                stats.add_bad_row(bad.reason, location, bad.detail)
                continue
            stats.shapes[converted.shape] += 1
            writer.append((record_json(converted.record), key))
    finally:
        count = writer.close()
        if progress is not None:
            progress.close()
    return ConvertedSource(path, count)


def _record_key(record) -> bytes:
    """``record_digest(record)``; BadRow("lone_surrogate") when a string of the record is not text.
    Files are checked as they are read (tune.data.rows) and JSON strings as converters decode them
    (tune.data.json_text); this covers what neither reads, rows from the Hub's `datasets`."""
    try:
        return record_digest(record)
    except UnicodeEncodeError as err:
        raise BadRow("lone_surrogate", f"the record holds {lone_surrogate_detail(err.object, err.start)}, which is "
                                       "not text (an unpaired \\ud800-\\udfff escape); fix or remove it") from None


def read_keys(converted: ConvertedSource) -> np.ndarray:
    """The duplicate keys of every record, in source order (an array of 16-byte values)."""
    parts = []
    for batch in read_batches(converted.path):
        keys = batch.column("key")
        parts.append(np.frombuffer(keys.buffers()[1], dtype=KEY_DTYPE, count=len(keys), offset=keys.offset * 16).copy())
    return np.concatenate(parts) if parts else np.empty(0, dtype=KEY_DTYPE)


def read_records(converted: ConvertedSource, rows: np.ndarray | None = None) -> Iterator[tuple[int, str]]:
    """``(row, record JSON)`` for the ascending row numbers ``rows`` (every row when None), read batch by batch."""
    start, wanted = 0, 0
    for batch in read_batches(converted.path):
        end = start + batch.num_rows
        texts = batch.column("record")
        if rows is None:
            for offset in range(batch.num_rows):
                yield start + offset, texts[offset].as_py()
        else:
            while wanted < len(rows) and rows[wanted] < end:
                row = int(rows[wanted])
                yield row, texts[row - start].as_py()
                wanted += 1
        start = end
