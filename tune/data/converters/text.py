"""`text`: rows with one `text` column, for continued pre-training.

    {"text": "..."}

The text is kept exactly as written (no stripping); a blank text is a bad row.
"""

from __future__ import annotations

from collections.abc import Mapping

from tune.data.converters.row_fields import column, get_text, source_row
from tune.data.converters.base import Converted, Converter
from tune.data.records import BadRow, Text, check_text

SHAPE = "text"  # the one shape: a text column


def read(row, fields: Mapping[str, str]) -> Converted:
    """The row's text; BadRow when it is missing, not a string, or blank."""
    row = source_row(row)
    value = get_text(row, fields, "text")
    if not value.strip():
        raise BadRow("empty_text", f"`{column(fields, 'text')}` is blank")
    check_text(value)
    return Converted(Text(value), SHAPE)


CONVERTER = Converter(name="text", kind="text", version=1, default_fields={"text": "text"}, read=read, shapes=(SHAPE,))
