"""Read the documents of a pre-training corpus file, in file order, for `tune data tokenize`.

One reader per kind, told apart by the file name:

    .jsonl, .jsonl.gz   one JSON object per line; the document is its text field (``text`` unless
                        told otherwise); blank lines are skipped
    .parquet            one document per row of the text column (read in record batches)
    .txt                the whole file is one document (``txt_documents="file"``, the default), or
                        every line is one (``"line"``: blank lines skipped, the newline dropped)

``documents(path, ...)`` yields ``(text, bytes_done)``: the document and how many bytes of the file
have been read so far (compressed bytes for .gz, a row-proportional estimate for parquet), which the
progress line turns into an ETA. Refuses (UserError) what a user must fix, naming the file and line:
an unknown file kind, a line that is not JSON or not an object, a missing or non-string text field
(listing the fields the line has), a parquet file without the column, text that is not UTF-8.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

from tune.errors import UserError

KINDS = (".jsonl", ".jsonl.gz", ".parquet", ".txt")
TXT_DOCUMENTS = ("file", "line")


def input_kind(path: Path) -> str:
    """The reader ``path`` takes (one of ``KINDS``); UserError for any other name."""
    name = path.name.lower()
    for kind in sorted(KINDS, key=len, reverse=True):
        if name.endswith(kind):
            return kind
    raise UserError(f"{path}: cannot tell what kind of corpus file this is; "
                    f"tune data tokenize reads {', '.join(KINDS)} files")


def documents(path: Path, text_field: str = "text", txt_documents: str = "file") -> Iterator[tuple[str, int]]:
    """The documents of ``path`` in file order, each with the bytes read so far (module docstring)."""
    kind = input_kind(path)
    if kind == ".parquet":
        yield from _parquet_documents(path, text_field)
    elif kind == ".txt":
        yield from _txt_documents(path, txt_documents)
    else:
        yield from _jsonl_documents(path, text_field, compressed=kind == ".jsonl.gz")


def _jsonl_documents(path: Path, field: str, compressed: bool) -> Iterator[tuple[str, int]]:
    with open(path, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                yield _text_of(line, path, number, field), raw.tell()
        except (OSError, EOFError) as err:  # gzip: not a gzip file, truncated stream
            raise UserError(f"{path}: cannot read it as {'gzip-compressed ' if compressed else ''}JSONL ({err})") from None


def _text_of(line: bytes, path: Path, number: int, field: str) -> str:
    """The text field of one JSONL line; UserError naming ``path:number`` when it has none."""
    try:
        row = json.loads(line)
    except UnicodeDecodeError:
        raise UserError(f"{path}:{number}: the line is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path}:{number}: not a JSON line ({err.msg} at column {err.colno}); "
                        "every line of a .jsonl corpus must be one JSON object") from None
    if not isinstance(row, dict):
        raise UserError(f"{path}:{number}: expected a JSON object with a {field!r} field, got a {type(row).__name__}")
    if field not in row:
        present = ", ".join(repr(key) for key in row) or "none"
        raise UserError(f"{path}:{number}: no field {field!r} (the line has: {present}); "
                        "name the text field with --text-field")
    text = row[field]
    if not isinstance(text, str):
        raise UserError(f"{path}:{number}: field {field!r} is a {type(text).__name__}, not a string")
    return text


def _parquet_documents(path: Path, column: str) -> Iterator[tuple[str, int]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for a garbled file
        raise UserError(f"{path}: not a readable parquet file ({err})") from None
    names = parquet.schema_arrow.names
    if column not in names:
        raise UserError(f"{path}: no column {column!r} (the file has: {', '.join(map(repr, names))}); "
                        "name the text column with --text-field")
    total_rows = max(parquet.metadata.num_rows, 1)
    size = path.stat().st_size
    row = 0
    for batch in parquet.iter_batches(columns=[column]):
        for text in batch.column(0).to_pylist():
            row += 1
            if not isinstance(text, str):
                raise UserError(f"{path}: row {row}: column {column!r} is {type(text).__name__}, not a string")
            yield text, size * row // total_rows


def _txt_documents(path: Path, mode: str) -> Iterator[tuple[str, int]]:
    if mode not in TXT_DOCUMENTS:
        raise UserError(f"--txt-documents {mode!r}: expected one of {', '.join(TXT_DOCUMENTS)}")
    if mode == "file":
        data = path.read_bytes()
        yield _utf8(data, path, None), len(data)
        return
    done = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            done += len(line)
            text = _utf8(line, path, number).rstrip("\r\n")
            if text.strip():
                yield text, done


def _utf8(data: bytes, path: Path, line: int | None) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        where = f"{path}:{line}" if line else str(path)
        raise UserError(f"{where}: not UTF-8 text (byte {err.start})") from None
