"""Where a recipe's dataset rows come from: a card's samples, a local file or folder, or the hub.

``open_source(entry)`` gives a ``Source``: a label for reports, the converter and field mapping to
apply, a fingerprint of what will be read (for the data cache), and an iterator over
``(location, row or BadRow)``. The hub is asked only when a card's real data is wanted and no
local copy is named; when it cannot be reached the UserError says how to point at a local copy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tune.config.schema import DatasetEntry
from tune.errors import UserError

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass
class Source:
    label: str  # "card oasst2-33k-ja (samples)" or a file path
    converter: str
    fields: dict[str, str]
    kind: str | None  # the card's kind, None for a plain file
    fingerprint: str  # changes whenever the rows read could change
    rows: callable  # () -> Iterator[tuple[str, dict | BadRow]]


def open_source(entry: DatasetEntry) -> Source:
    """The rows ``entry`` names and how to convert them; UserError for a path or hub it cannot read."""
    if entry.card is None:
        path = Path(entry.path)
        return _file_source(path, str(path), entry.format or "messages", entry.fields or {}, None, "")
    from tune.data.cards import card_samples_path, load_card

    card = load_card(entry.card)
    fields = {**card.source.fields, **(entry.fields or {})}
    identity = f"{card.hf_id}|{card.config}|{card.revision}|{card.split}"
    if entry.use == "samples":
        label = f"card {card.name} (samples)"
        return _file_source(card_samples_path(card), label, card.source.converter, fields, card.kind, identity)
    if entry.path is not None:
        label = f"card {card.name} ({entry.path})"
        return _file_source(Path(entry.path), label, card.source.converter, fields, card.kind, identity)
    return _hub_source(card, fields)


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.suffix in SUPPORTED_SUFFIXES)
    if not files:
        raise UserError(f"{path}: no {', '.join(SUPPORTED_SUFFIXES)} files in this folder")
    return files


def _file_source(path: Path, label, converter, fields, kind, identity) -> Source:
    from tune.data.rows import read_rows, row_location

    files = _files(path)
    digest = hashlib.sha256(identity.encode())
    for file in files:
        digest.update(file.name.encode())
        digest.update(_file_hash(file).encode())

    def rows() -> Iterator:
        for file in files:
            try:
                for index, row in read_rows(file):
                    yield row_location(file, index), row
            except ValueError as err:
                raise UserError(str(err)) from None

    return Source(label, converter, fields, kind, digest.hexdigest(), rows)


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hub_source(card, fields) -> Source:
    from tune.hub import hub_unreachable

    identity = f"{card.hf_id}|{card.config}|{card.revision}|{card.split}"
    if card.revision is None:
        identity += "|unpinned"  # cannot know when it changes: the cache key still names it

    def rows() -> Iterator:
        from datasets import load_dataset

        try:
            dataset = load_dataset(card.hf_id, card.config, revision=card.revision, split=card.split)
        except Exception as err:  # offline with no cached copy, gated repo, ...
            if not hub_unreachable():
                raise
            raise UserError(_offline_message(card)) from err
        for index, row in enumerate(dataset):
            yield f"{card.hf_id}[{card.split}] row {index}", row

    return Source(f"card {card.name} ({card.hf_id})", card.source.converter, fields, card.kind,
                  hashlib.sha256(identity.encode()).hexdigest(), rows)


def _offline_message(card) -> str:
    return (
        f"card {card.name}: the Hugging Face Hub cannot be reached and {card.hf_id} is not cached; "
        f"download it on a machine with access and set `path:` on this dataset to the local copy "
        f"(or `use: samples` to try the bundled sample rows)"
    )
