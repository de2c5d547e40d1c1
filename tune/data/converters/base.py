"""What a converter is: a named, versioned function from one source schema to canonical records."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tune.data.records import Record


@dataclass(frozen=True)
class Converted:
    """The record of one source row and the name of the shape the row was in (one of its
    converter's ``shapes``), which the data report counts."""

    record: Record
    shape: str


@dataclass(frozen=True)
class Converter:
    """One source format.

    ``default_fields`` maps each logical field the converter reads to the source column it reads
    it from by default; a card or recipe may point a logical field at another column.
    ``optional_fields`` are logical fields read only when mapped (e.g. ``system``).
    ``shapes`` names the shapes of row the converter reads, the usual one first; a converter that
    reads one shape names that one. ``version`` changes whenever the output for the same input
    changes (it is part of the data cache key). ``read(row, fields)`` detects the row's shape and
    returns a ``Converted`` (record and shape) or raises BadRow, a row in none of the shapes
    included; ``convert`` is ``read`` without the shape. Every default maps a logical field to the
    column of the same name, so both give the same result whether handed the merged mapping or
    only the overrides. A null-valued key counts as absent at every depth
    (tune.data.converters.row_fields), so rows read from parquet, Arrow or the Hub convert exactly
    as the same rows read from JSONL.
    """

    name: str
    kind: str
    version: int
    default_fields: dict[str, str]
    read: Callable[[dict, Mapping[str, str]], Converted]
    shapes: tuple[str, ...]
    optional_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.shapes or len(set(self.shapes)) != len(self.shapes):
            raise ValueError(f"converter `{self.name}`: shapes must be distinct names, at least one; got {self.shapes!r}")

    def convert(self, row, fields: Mapping[str, str]) -> Record:
        """The record of ``row`` read with ``fields`` (raises BadRow)."""
        return self.read(row, fields).record

    @property
    def logical_fields(self) -> tuple[str, ...]:
        """Every logical field this converter understands."""
        return (*self.default_fields, *self.optional_fields)

    def resolve_fields(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """``overrides`` merged over the defaults.

        Refuses (ValueError) a logical field this converter does not read, and a column name that
        is not a non-empty string.
        """
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.logical_fields))
        if unknown:
            raise ValueError(
                f"converter `{self.name}` has no field {', '.join(map(repr, unknown))}; "
                f"its fields are {', '.join(self.logical_fields)}"
            )
        for logical, source in overrides.items():
            if not isinstance(source, str) or not source:
                raise ValueError(f"converter `{self.name}`: field {logical!r} must name a column, got {source!r}")
        return {**self.default_fields, **overrides}

    def __call__(self, row, fields: Mapping[str, str] | None = None) -> Record:
        """Convert ``row`` with ``fields`` merged over the defaults (raises BadRow)."""
        return self.convert(row, self.resolve_fields(fields))
