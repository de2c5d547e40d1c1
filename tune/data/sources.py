"""Where a recipe's dataset rows come from: a card's samples, a local file or folder, or the hub.

``open_source(entry)`` gives a ``Source``: a label for reports, the converter and field mapping to
apply, a fingerprint of what will be read (for the data cache), how many rows it holds when that
is cheap to know (for progress), and ``rows()``, an iterator over ``(location, row or BadRow)``.
The hub is asked only when a card's real data is wanted and no local copy is named; when it
cannot be reached the UserError says how to point at a local copy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tune.config.schema import DatasetEntry
from tune.data.records import BadRow
from tune.errors import UserError

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".parquet")

Row = dict | BadRow


@dataclass
class Source:
    """One dataset of a recipe, ready to be read (see the module docstring)."""

    label: str  # "card oasst2-33k-ja (samples)" or a file path
    converter: str
    fields: dict[str, str]
    fingerprint: str  # changes whenever the rows read could change
    total_rows: int | None  # rows (at most; a .jsonl's lines) when cheap to know, else None
    rows: Callable[[], Iterator[tuple[str, Row]]]


def open_source(entry: DatasetEntry) -> Source:
    """The rows ``entry`` names and how to convert them; UserError for a path or hub it cannot read."""
    if entry.card is None:
        path = Path(entry.path)
        return _file_source(path, str(path), entry.format or "messages", entry.fields or {}, "")
    from tune.data.cards import card_samples_path, load_card

    card = load_card(entry.card)
    fields = {**card.source.fields, **(entry.fields or {})}
    identity = f"{card.hf_id}|{card.config}|{card.revision}|{card.split}"
    if entry.use == "samples":
        label = f"card {card.name} (samples)"
        return _file_source(card_samples_path(card), label, card.source.converter, fields, identity)
    if entry.path is not None:
        label = f"card {card.name} ({entry.path})"
        return _file_source(Path(entry.path), label, card.source.converter, fields, identity)
    return _hub_source(card, fields)


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.suffix in SUPPORTED_SUFFIXES)
    if not files:
        raise UserError(f"{path}: no {', '.join(SUPPORTED_SUFFIXES)} files in this folder")
    return files


def _file_source(path: Path, label: str, converter: str, fields: dict[str, str], identity: str) -> Source:
    from tune.data.rows import read_rows, row_location

    files = _files(path)
    digest = hashlib.sha256(identity.encode())
    total: int | None = 0
    for file in files:
        digest.update(file.name.encode())
        file_digest, lines = _file_hash(file)
        digest.update(file_digest.encode())
        total = _add(total, lines if file.suffix == ".jsonl" else _parquet_rows(file) if file.suffix == ".parquet" else None)

    def rows() -> Iterator[tuple[str, Row]]:
        for file in files:
            try:
                for index, row in read_rows(file):
                    yield row_location(file, index), row
            except ValueError as err:
                raise UserError(str(err)) from None

    return Source(label, converter, fields, digest.hexdigest(), total, rows)


def _add(total: int | None, more: int | None) -> int | None:
    return None if total is None or more is None else total + more


def _file_hash(path: Path) -> tuple[str, int]:
    """The sha256 of the file and its number of line breaks (read in one pass)."""
    digest, lines = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            lines += block.count(b"\n")
    return digest.hexdigest(), lines


def _parquet_rows(path: Path) -> int | None:
    try:
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # a damaged file: read_rows says so, with its name
        return None


def _hub_source(card, fields: dict[str, str]) -> Source:
    from tune.hub import hub_unreachable

    identity = f"{card.hf_id}|{card.config}|{card.revision}|{card.split}"
    if card.revision is None:
        identity += "|unpinned"  # cannot know when it changes: the cache key still names it

    def rows() -> Iterator[tuple[str, Row]]:
        from datasets import load_dataset

        try:
            dataset = load_dataset(card.hf_id, card.config, revision=card.revision, split=card.split)
        except Exception as err:  # offline with no cached copy, gated repo, ...
            if not hub_unreachable():
                raise
            raise UserError(_offline_message(card)) from err
        for index, row in enumerate(dataset):
            yield f"{card.hf_id}[{card.split}] row {index}", row

    return Source(f"card {card.name} ({card.hf_id})", card.source.converter, fields,
                  hashlib.sha256(identity.encode()).hexdigest(), None, rows)


def _offline_message(card) -> str:
    return (
        f"card {card.name}: the Hugging Face Hub cannot be reached and {card.hf_id} is not cached; "
        f"download it on a machine with access and set `path:` on this dataset to the local copy "
        f"(or `use: samples` to try the bundled sample rows)"
    )
