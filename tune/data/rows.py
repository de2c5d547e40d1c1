"""Read the rows of a local data file, one JSON object per row, without judging their content.

Supported: ``.jsonl`` (one object per line; blank lines skipped), ``.json`` (a list of objects),
``.parquet`` (columns of Arrow's ``arrow.json`` type, which `datasets` writes for objects whose keys vary
from row to row, are decoded back to objects). Each row comes with its 0-based index: for ``.jsonl`` the index is the line number
minus one (blank lines keep their number), so messages say "line N" = index + 1; for the other
formats it is the position in the file ("row N").

A row that cannot be read as an object is yielded as a ``BadRow`` at its index (an invalid JSON
line, a list where an object should be), never skipped: the caller counts and reports it. A file
that cannot be read at all raises ``UnreadableFile`` (a UserError and a ValueError).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from tune.data.records import BadRow, type_name
from tune.errors import UserError

SUPPORTED_EXTENSIONS = (".jsonl", ".json", ".parquet")


class UnreadableFile(UserError, ValueError):
    """The file as a whole cannot be read: missing, unsupported extension, not a JSON list, ..."""


def read_rows(path) -> Iterator[tuple[int, dict | BadRow]]:
    """Every row of ``path`` as ``(index, object)`` or ``(index, BadRow)``, in file order.

    Refuses (UnreadableFile, before yielding anything) a missing file, an extension other than
    .jsonl / .json / .parquet, a .json file that is not a list, and an unreadable .parquet file.
    """
    path = Path(path)
    readers = {".jsonl": _jsonl_rows, ".json": _json_rows, ".parquet": _parquet_rows}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise UnreadableFile(
            f"{path}: cannot read files ending in {path.suffix or '(no extension)'!r}; "
            f"supported: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    if not path.is_file():
        raise UnreadableFile(f"{path}: no such file")
    return reader(path)


def row_location(path, index: int) -> str:
    """How a person finds row ``index`` of ``path``: ``data.jsonl:line 3`` or ``data.parquet:row 2``."""
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        return f"{path}:line {index + 1}"
    return f"{path}:row {index}"


def _as_row(value, what: str) -> dict | BadRow:
    if isinstance(value, dict):
        return value
    return BadRow("not_an_object", f"{what} is {type_name(value)}, expected a JSON object")


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict | BadRow]]:
    with open(path, encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                yield index, BadRow("invalid_json", f"line {index + 1} is not valid JSON ({err.msg} at column {err.colno})")
                continue
            yield index, _as_row(value, f"line {index + 1}")


def _json_rows(path: Path) -> Iterator[tuple[int, dict | BadRow]]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as err:
        raise UnreadableFile(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    if not isinstance(data, list):
        raise UnreadableFile(f"{path}: a .json data file must hold a list of objects, found {type_name(data)}; "
                             "for one object per line use .jsonl")
    return ((index, _as_row(value, f"row {index}")) for index, value in enumerate(data))


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict | BadRow]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise UnreadableFile(f"{path}: not a readable parquet file ({err})") from None

    decode = {field.name: _json_decoder(field.type) for field in parquet.schema_arrow}

    def rows():
        index = 0
        for batch in parquet.iter_batches():
            for value in batch.to_pylist():
                yield index, _decoded_row(value, decode, path, index)
                index += 1

    return rows()


def _json_decoder(arrow_type):
    """A function turning a value of ``arrow_type`` as pyarrow gives it into the JSON it stands for, or None
    when the type holds no ``arrow.json`` column: `datasets` writes objects whose keys differ from row to
    row (Harmony content blocks, tool calls) as that canonical extension type, i.e. as JSON text."""
    import pyarrow as pa

    if isinstance(arrow_type, pa.BaseExtensionType) and arrow_type.extension_name == "arrow.json":
        return lambda value: None if value is None else json.loads(value)
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        inner = _json_decoder(arrow_type.value_type)
        return None if inner is None else (lambda value: None if value is None else [inner(v) for v in value])
    if pa.types.is_struct(arrow_type):
        fields = {arrow_type.field(i).name: _json_decoder(arrow_type.field(i).type) for i in range(arrow_type.num_fields)}
        fields = {name: decode for name, decode in fields.items() if decode is not None}
        if not fields:
            return None
        return lambda value: None if value is None else {k: (fields[k](v) if k in fields else v) for k, v in value.items()}
    return None


def _decoded_row(value: dict, decode: dict, path: Path, index: int) -> dict | BadRow:
    try:
        return {key: (decode[key](item) if decode.get(key) else item) for key, item in value.items()}
    except json.JSONDecodeError as err:
        return BadRow("invalid_json", f"row {index} holds a JSON column that is not valid JSON ({err.msg})")
