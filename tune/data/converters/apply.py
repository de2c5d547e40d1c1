"""Convert every row of a file, and account for every row that could not be converted.

Bad rows never vanish. With ``on_bad_row="skip"`` each is counted by reason and the first few of
each reason are kept with their location (``file:line N`` for .jsonl, ``file:row N`` otherwise),
for the report printed after preparation. With ``on_bad_row="error"`` the first bad row stops
everything with a ``BadRowError`` naming its location, reason and detail.

Worked example: a .jsonl file whose line 2 lacks ``output`` and whose line 4 is not JSON::

    result = convert_file("x.jsonl", "alpaca")
    result.bad.counts   -> {"missing_field": 1, "invalid_json": 1}
    result.bad.lines()  -> ["2 bad rows skipped", "  missing_field: 1, e.g. x.jsonl:line 2: `output` is missing", ...]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tune.data.converters import get_converter
from tune.data.converters.base import Converter
from tune.data.records import BadRow, Record
from tune.data.rows import read_rows, row_location
from tune.errors import UserError

ON_BAD_ROW = ("skip", "error")


class BadRowError(UserError):
    """The first bad row of a file, raised when ``on_bad_row`` is ``error``."""

    def __init__(self, location: str, bad: BadRow) -> None:
        super().__init__(f"{location}: {bad.reason}: {bad.detail} (set data.on_bad_row: skip to skip such rows and report them)")
        self.location = location
        self.bad = bad


@dataclass(frozen=True)
class BadRowExample:
    location: str
    reason: str
    detail: str


@dataclass
class BadRowTally:
    """Bad rows counted by reason, with the first ``max_examples`` of each reason."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[BadRowExample]] = field(default_factory=dict)
    max_examples: int = 3

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, location: str, bad: BadRow) -> None:
        """Count ``bad`` (found at ``location``) and keep it as an example if there is room."""
        self.counts[bad.reason] += 1
        kept = self.examples.setdefault(bad.reason, [])
        if len(kept) < self.max_examples:
            kept.append(BadRowExample(location, bad.reason, bad.detail))

    def merge(self, other: BadRowTally) -> None:
        """Add ``other``'s counts and examples (up to this tally's example limit) to this one."""
        for reason, count in other.counts.items():
            self.counts[reason] += count
            kept = self.examples.setdefault(reason, [])
            kept.extend(other.examples.get(reason, [])[: max(0, self.max_examples - len(kept))])

    def lines(self) -> list[str]:
        """The report: a total, then one line per reason (most frequent first) and its examples."""
        if not self.total:
            return []
        out = [f"{self.total} bad row{'s' if self.total != 1 else ''} skipped"]
        for reason, count in self.counts.most_common():
            out.append(f"  {reason}: {count}")
            out.extend(f"    e.g. {ex.location}: {ex.detail}" for ex in self.examples.get(reason, []))
        return out


@dataclass
class ConvertedFile:
    """The records of one file, in file order with their row index, and its bad rows."""

    path: Path
    records: list[tuple[int, Record]]
    bad: BadRowTally
    rows_read: int


def iter_converted(path, converter: str | Converter, fields: Mapping[str, str] | None = None
                   ) -> Iterator[tuple[int, Record | BadRow]]:
    """``(index, record)`` or ``(index, BadRow)`` for every row of ``path``.

    Refuses (ValueError) an unknown converter or field mapping, and (UnreadableFile) a file that
    cannot be read at all, before yielding anything.
    """
    converter = get_converter(converter) if isinstance(converter, str) else converter
    resolved = converter.resolve_fields(fields)
    rows = read_rows(path)

    def converted():
        for index, row in rows:
            if isinstance(row, BadRow):
                yield index, row
                continue
            try:
                yield index, converter.convert(row, resolved)
            except BadRow as bad:
                yield index, bad

    return converted()


def convert_file(path, converter: str | Converter, fields: Mapping[str, str] | None = None,
                 on_bad_row: str = "skip", max_examples: int = 3) -> ConvertedFile:
    """Every convertible row of ``path`` as a record, plus the tally of the rest.

    ``on_bad_row="error"`` raises BadRowError at the first bad row instead. Refuses (ValueError)
    an ``on_bad_row`` other than skip / error.
    """
    if on_bad_row not in ON_BAD_ROW:
        raise ValueError(f"on_bad_row must be one of {', '.join(ON_BAD_ROW)}, got {on_bad_row!r}")
    tally = BadRowTally(max_examples=max_examples)
    records, rows_read = [], 0
    for index, result in iter_converted(path, converter, fields):
        rows_read += 1
        if isinstance(result, BadRow):
            location = row_location(path, index)
            if on_bad_row == "error":
                raise BadRowError(location, result)
            tally.add(location, result)
        else:
            records.append((index, result))
    return ConvertedFile(Path(path), records, tally, rows_read)
