"""The registry of source-format converters, by name.

Each converter lives in its own module and turns rows of one source schema into canonical
records (tune.data.records), saying for each row which of its shapes the row was in (a
converter may read more than one shape of the same data, e.g. sharegpt's from/value and
role/content turns). A null-valued key counts as an absent key at every depth, so rows read from
parquet, Arrow or the Hub convert as the same rows read from JSONL (row_fields). A recipe or card
names one of ``CONVERTERS`` and may map its logical fields to other columns. The data pipeline
applies them (tune.data.conversion).
"""

from __future__ import annotations

from tune.data.converters import alpaca, llmjp4_sft, messages, preference, sharegpt, text
from tune.config.problems import closest
from tune.data.converters.base import Converter

CONVERTERS: dict[str, Converter] = {
    module.CONVERTER.name: module.CONVERTER
    for module in (messages, llmjp4_sft, sharegpt, alpaca, preference, text)
}


def get_converter(name: str) -> Converter:
    """The converter called ``name``; ValueError listing the known names (and the closest) otherwise."""
    if name in CONVERTERS:
        return CONVERTERS[name]
    close = closest(name, CONVERTERS)
    hint = f" (did you mean `{close}`?)" if close else ""
    raise ValueError(f"unknown converter `{name}`{hint}; known: {', '.join(CONVERTERS)}")


__all__ = ["CONVERTERS", "Converter", "get_converter"]
