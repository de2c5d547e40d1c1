"""Reading named fields out of a source row, refusing what is missing or mistyped by name.

Every converter reads its columns through these helpers so that a missing column, a null, or a
list where text belongs is reported the same way by all of them.

A null-valued key is an absent key, at every depth. Parquet, Arrow and the Hub's ``datasets`` give
every row every column and every object (a struct) every key any row of the file has, with null
where the row has none: a text block gains ``model_identity: null``, a tool call's arguments gain
``{"unit": null}``. ``source_row`` removes those keys before a converter looks at the row, so a row
read from parquet converts exactly as the same row read from JSONL. The one ambiguity: a key whose
real value is null cannot be told apart from one Arrow added, so it is removed in both paths (a
tool call's ``{"unit": null}`` becomes ``{}``, from JSONL too). List elements are never removed:
Arrow does not add elements, so a null element is the row's own (and is refused where it matters).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from tune.data import json_text
from tune.data.records import BadRow, type_name


def source_row(row) -> dict:
    """``row`` without its null-valued keys at any depth (module docstring); BadRow("not_an_object")
    when it is not a JSON object."""
    if not isinstance(row, dict):
        raise BadRow("not_an_object", f"the row is {type_name(row)}, expected a JSON object")
    return without_nulls(row)


def without_nulls(value):
    """``value`` with every null-valued key of every object in it removed, at any depth (lists keep
    their elements, nulls included); the input is not changed."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, (list, tuple)):
        return [without_nulls(item) for item in value]
    return value


def column(fields: Mapping[str, str], logical: str) -> str:
    """The source column that holds logical field ``logical``."""
    return fields.get(logical) or logical


def get_field(row: dict, fields: Mapping[str, str], logical: str, required: bool = True):
    """The value of logical field ``logical``; None when it is optional and absent or null.

    Raises BadRow("missing_field") naming the source column when a required field is absent or null.
    """
    name = column(fields, logical)
    value = row.get(name)
    if value is None and required:
        raise BadRow("missing_field", f"`{name}` is missing")
    return value


def get_text(row: dict, fields: Mapping[str, str], logical: str, required: bool = True) -> str | None:
    """Like get_field, but the value must be a string (BadRow("non_string_content") otherwise)."""
    value = get_field(row, fields, logical, required)
    if value is not None and not isinstance(value, str):
        raise BadRow("non_string_content", f"`{column(fields, logical)}` is {type_name(value)}, expected a string")
    return value


def get_list(row: dict, fields: Mapping[str, str], logical: str) -> list:
    """A required list field. Some copies store such lists as a JSON string: that is decoded (and its
    null-valued keys removed, as ``source_row`` removes the row's).

    Raises BadRow: missing_field, invalid_json (a string that is not JSON), wrong_type, and what
    tune.data.json_text refuses in JSON that parses (number_too_long, too_deep, lone_surrogate).
    """
    name = column(fields, logical)
    value = get_field(row, fields, logical)
    if isinstance(value, str):
        try:
            value = json_text.loads(value, f"`{name}`")
        except json.JSONDecodeError as err:
            raise BadRow("invalid_json", f"`{name}` is a string that is not valid JSON ({err.msg})") from None
        value = without_nulls(value)
    if not isinstance(value, (list, tuple)):
        raise BadRow("wrong_type", f"`{name}` is {type_name(value)}, expected a list")
    return list(value)


def optional_system(row: dict, fields: Mapping[str, str]) -> list[tuple[dict, str]]:
    """A leading system message from the optional ``system`` column, with its source label.

    Only read when a card maps ``system`` to a column; an absent, null or blank value gives no
    message (Daring-Anteater, for example, leaves most system prompts empty).
    """
    if "system" not in fields:
        return []
    text = get_text(row, fields, "system", required=False)
    if not text or not text.strip():
        return []
    return [({"role": "system", "content": text}, column(fields, "system"))]
