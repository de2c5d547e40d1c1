"""The registry of source-format converters, by name.

Each converter lives in its own module and turns rows of one source schema into canonical
records (tune.data.records). A recipe or card names one of ``CONVERTERS`` and may map its
logical fields to other columns. Apply one to a file with ``convert_file`` (tune.data.converters.apply).
"""

from __future__ import annotations

import difflib

from tune.data.converters import alpaca, llmjp4_sft, messages, preference, sharegpt, text
from tune.data.converters.base import Converter

CONVERTERS: dict[str, Converter] = {
    module.CONVERTER.name: module.CONVERTER
    for module in (messages, llmjp4_sft, sharegpt, alpaca, preference, text)
}


def get_converter(name: str) -> Converter:
    """The converter called ``name``; ValueError listing the known names (and the closest) otherwise."""
    if name in CONVERTERS:
        return CONVERTERS[name]
    close = difflib.get_close_matches(str(name), CONVERTERS, n=1)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    raise ValueError(f"unknown converter `{name}`{hint}; known: {', '.join(CONVERTERS)}")


__all__ = ["CONVERTERS", "Converter", "get_converter"]
