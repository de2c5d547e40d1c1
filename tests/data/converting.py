"""Converting a whole dataset the way preparation does (tune.data.conversion), for tests that look at records."""

from __future__ import annotations

from pathlib import Path

from tune.config.schema import DatasetEntry
from tune.data.conversion import convert_source, read_records
from tune.data.converters import get_converter
from tune.data.records import Record, record_from_json
from tune.data.report import DatasetStats
from tune.data.sources import open_source


def convert_dataset(entry: dict, folder: Path, on_bad_row: str = "skip") -> tuple[list[Record], DatasetStats]:
    """The records of the dataset ``entry`` (a `data.datasets` item), in source order, and its stats
    (rows read, bad rows by reason with example locations), converted into ``folder``."""
    source = open_source(DatasetEntry(**entry))
    converter = get_converter(source.converter)
    source.fields = converter.resolve_fields(source.fields)
    stats = DatasetStats(source.label)
    Path(folder).mkdir(parents=True, exist_ok=True)
    converted = convert_source(source, converter, stats, on_bad_row, Path(folder) / "records.arrow")
    return [record_from_json(text) for _, text in read_records(converted)], stats


def system_object(effort="high"):
    """An LLM-jp-4 SFT row's Harmony system message: one `system_content` object with the reasoning effort."""
    return {"role": "system", "content": [{
        "type": "system_content", "model_identity": "You are LLM-jp-4.", "reasoning_effort": effort,
        "conversation_start_date": "2025-11-20", "knowledge_cutoff": "2025-06",
        "channel_config": {"valid_channels": ["analysis", "commentary", "final"], "channel_required": True}}]}


def blocks(text):
    """Content as the LLM-jp-4 SFT rows hold it: a list of text blocks."""
    return [{"type": "text", "text": text}]
