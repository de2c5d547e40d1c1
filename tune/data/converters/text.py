"""`text`: rows with one `text` column, for continued pre-training.

    {"text": "..."}

The text is kept exactly as written (no stripping); a blank text is a bad row.
"""

from __future__ import annotations

from collections.abc import Mapping

from tune.data.converters.row_fields import column, get_text, require_object
from tune.data.converters.base import Converter
from tune.data.records import BadRow, Text, check_text


def convert(row, fields: Mapping[str, str]) -> Text:
    """The row's text; BadRow when it is missing, not a string, or blank."""
    row = require_object(row)
    value = get_text(row, fields, "text")
    if not value.strip():
        raise BadRow("empty_text", f"`{column(fields, 'text')}` is blank")
    check_text(value)
    return Text(value)


CONVERTER = Converter(name="text", kind="text", version=1, default_fields={"text": "text"}, convert=convert)
