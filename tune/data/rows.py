"""Read the rows of a local data file, one JSON object per row, without judging their content.

Supported: ``.jsonl`` (one object per line, lines split at ``\n``; blank lines skipped), ``.json``
(a list of objects), ``.parquet`` (columns of Arrow's ``arrow.json`` type, which `datasets` writes
for objects whose keys vary from row to row, are decoded back to objects). Each row comes with its
0-based index: for ``.jsonl`` the index is the line number minus one (blank lines keep their
number), so messages say "line N" = index + 1; for the other formats it is the position in the file
("row N"). A UTF-8 byte order mark at the start of a .jsonl or .json file is skipped.

A row that cannot be read as an object is yielded as a ``BadRow`` at its index, never skipped and
never fatal to the rest of the file: the caller counts and reports it. Reasons: ``invalid_json`` (a
line that is not JSON), ``not_an_object`` (a list where an object should be), ``not_utf8`` (a .jsonl
line, a .json element or a parquet string holding bytes that are not UTF-8: the file is read as
bytes and decoded a line, an element, a value at a time), and what tune.data.json_text refuses in
JSON that parses: ``number_too_long``, ``too_deep``, ``lone_surrogate`` (also inside a parquet JSON
column). A file that cannot be read at all raises ``UnreadableFile`` (a UserError and a ValueError):
missing, unsupported extension, a .json file whose list structure is broken (its elements cannot be
told apart) or that is not a list, a .parquet file pyarrow cannot open.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from pathlib import Path

from tune.data import json_text
from tune.data.records import BadRow, type_name
from tune.errors import UserError

SUPPORTED_EXTENSIONS = (".jsonl", ".json", ".parquet")


class UnreadableFile(UserError, ValueError):
    """The file as a whole cannot be read: missing, unsupported extension, not a JSON list, ..."""


def read_rows(path) -> Iterator[tuple[int, dict | BadRow]]:
    """Every row of ``path`` as ``(index, object)`` or ``(index, BadRow)``, in file order.

    Refuses (UnreadableFile, before yielding anything) a missing file, an extension other than
    .jsonl / .json / .parquet, a .json file that is not a list or whose list cannot be told into
    elements (a missing comma, an unclosed element; its line named), and an unreadable .parquet file.
    Every other problem is one row's: a BadRow at its index (module docstring).
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
    with open(path, "rb") as handle:
        for index, raw in enumerate(handle):
            if index == 0 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            what = f"line {index + 1}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield index, _not_utf8(what, raw[err.start], f"byte {err.start + 1} of the line")
                continue
            if not line.strip():
                continue
            try:
                value = json_text.loads(line, what)
            except json.JSONDecodeError as err:
                yield index, BadRow("invalid_json", f"{what} is not valid JSON ({err.msg} at column {err.colno})")
                continue
            except BadRow as bad:
                yield index, bad
                continue
            yield index, _as_row(value, what)


def _not_utf8(what: str, byte: int, where: str) -> BadRow:
    return BadRow("not_utf8", f"{what} is not UTF-8 text (byte 0x{byte:02x} at {where}); "
                              "re-encode the file as UTF-8 or fix that row")


_WHITESPACE = re.compile(r"[ \t\n\r]*")
# A string (escapes skipped) or a bracket: enough to find where a list or object ends.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _json_rows(path: Path) -> Iterator[tuple[int, dict | BadRow]]:
    """The elements of a .json list, each parsed on its own so that one element Python cannot
    hold (or one holding bytes that are not UTF-8) is a bad row, not a lost file."""
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        text, escaped = data.decode("utf-8"), False
    except UnicodeDecodeError:  # undecodable bytes become lone surrogates U+DC80..U+DCFF, found per element below
        text, escaped = data.decode("utf-8", errors="surrogateescape"), True
    del data
    position = _WHITESPACE.match(text).end()
    if not text.startswith("[", position):
        _refuse_non_list(path, text)
    rows: list[tuple[int, dict | BadRow]] = []
    decoder = json.JSONDecoder()
    position = _WHITESPACE.match(text, position + 1).end()
    if text.startswith("]", position):
        position += 1
    else:
        while True:
            index, what, start = len(rows), f"row {len(rows)}", position
            try:
                value, position = decoder.raw_decode(text, start)
            except json.JSONDecodeError as err:
                raise UnreadableFile(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
            except (RecursionError, ValueError):  # too deep, or an integer past the digit limit: find its end
                position = _value_end(text, start)
                if position is None:
                    raise UnreadableFile(f"{path}: not valid JSON (row {index} at line "
                                         f"{text.count(chr(10), 0, start) + 1} does not end)") from None
                rows.append((index, _bad_element(text[start:position], what)))
            else:
                raw = text[start:position]
                rows.append((index, _element_row(value, raw, what, escaped, text, start)))
            position = _WHITESPACE.match(text, position).end()
            if text.startswith(",", position):
                position = _WHITESPACE.match(text, position + 1).end()
                continue
            if text.startswith("]", position):
                position += 1
                break
            raise UnreadableFile(f"{path}: not valid JSON (expected ',' or ']' after row {index} at line "
                                 f"{text.count(chr(10), 0, position) + 1})")
    if _WHITESPACE.match(text, position).end() != len(text):
        raise UnreadableFile(f"{path}: not valid JSON (extra data after the list at line {text.count(chr(10), 0, position) + 1})")
    return iter(rows)


def _refuse_non_list(path: Path, text: str):
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UnreadableFile(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    except (ValueError, RecursionError) as err:
        raise UnreadableFile(f"{path}: a .json data file must hold a list of objects; this one cannot be read ({err})") from None
    raise UnreadableFile(f"{path}: a .json data file must hold a list of objects, found {type_name(data)}; "
                         "for one object per line use .jsonl")


def _element_row(value, raw: str, what: str, escaped: bool, text: str, start: int) -> dict | BadRow:
    if escaped:
        found = json_text.SURROGATE.search(raw)
        if found is not None:  # only undecodable bytes put a surrogate in the text itself
            line = text.count("\n", 0, start + found.start()) + 1
            return _not_utf8(what, ord(found.group()) - 0xDC00, f"line {line} of the file")
    try:
        json_text.check_parsed(value, raw, what)
    except BadRow as bad:
        return bad
    return _as_row(value, what)


def _bad_element(raw: str, what: str) -> BadRow:
    """The BadRow of a .json element that json could not parse although it has an end."""
    try:
        json_text.loads(raw, what)
    except BadRow as bad:
        return bad
    except json.JSONDecodeError as err:
        return BadRow("invalid_json", f"{what} is not valid JSON ({err.msg})")
    return BadRow("invalid_json", f"{what} cannot be read as JSON")


def _value_end(text: str, start: int) -> int | None:
    """Where the JSON value starting at ``start`` ends (a list or object: its closing bracket, strings
    skipped; a number: its last digit); None when it does not end."""
    if text.startswith(("[", "{"), start):
        depth = 0
        for match in _STRING_OR_BRACKET.finditer(text, start):
            bracket = match.group()
            if bracket[0] == '"':
                continue
            depth += 1 if bracket in "[{" else -1
            if depth == 0:
                return match.end()
        return None
    number = _NUMBER.match(text, start)
    return number.end() if number else None


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
            try:
                values = batch.to_pylist()
            except UnicodeDecodeError:  # a string that is not UTF-8 (pyarrow does not check on write): row by row
                values = [_row_values(batch, row, index + row) for row in range(batch.num_rows)]
            for value in values:
                yield index, value if isinstance(value, BadRow) else _decoded_row(value, decode, index)
                index += 1

    return rows()


def _row_values(batch, row: int, index: int) -> dict | BadRow:
    """Row ``row`` of ``batch`` (the file's row ``index``) as a dict, or a not_utf8 BadRow naming the column."""
    values = {}
    for name, column in zip(batch.schema.names, batch.columns):
        try:
            values[name] = column.slice(row, 1).to_pylist()[0]
        except UnicodeDecodeError as err:
            return _not_utf8(f"row {index} column `{name}`", err.object[err.start], f"byte {err.start + 1} of a string")
    return values


def _json_decoder(arrow_type):
    """A function ``(value, what)`` turning a value of ``arrow_type`` as pyarrow gives it into the JSON it
    stands for, or None when the type holds no ``arrow.json`` column: `datasets` writes objects whose keys
    differ from row to row (Harmony content blocks, tool calls) as that canonical extension type, i.e. as
    JSON text, read by tune.data.json_text (raises json.JSONDecodeError or BadRow)."""
    import pyarrow as pa

    if isinstance(arrow_type, pa.BaseExtensionType) and arrow_type.extension_name == "arrow.json":
        return lambda value, what: None if value is None else json_text.loads(value, what)
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        inner = _json_decoder(arrow_type.value_type)
        return None if inner is None else (lambda value, what: None if value is None else [inner(v, what) for v in value])
    if pa.types.is_struct(arrow_type):
        fields = {arrow_type.field(i).name: _json_decoder(arrow_type.field(i).type) for i in range(arrow_type.num_fields)}
        fields = {name: decode for name, decode in fields.items() if decode is not None}
        if not fields:
            return None
        return lambda value, what: None if value is None else {k: (fields[k](v, what) if k in fields else v)
                                                              for k, v in value.items()}
    return None


def _decoded_row(value: dict, decode: dict, index: int) -> dict | BadRow:
    decoded = {}
    for key, item in value.items():
        what = f"row {index} column `{key}`"
        try:
            decoded[key] = decode[key](item, what) if decode.get(key) else item
        except json.JSONDecodeError as err:
            return BadRow("invalid_json", f"row {index} holds a JSON column that is not valid JSON ({err.msg})")
        except BadRow as bad:
            return bad
    return decoded
