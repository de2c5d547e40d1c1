"""What a converter is: a named, versioned function from one source schema to canonical records."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tune.data.records import Record


@dataclass(frozen=True)
class Converter:
    """One source format.

    ``default_fields`` maps each logical field the converter reads to the source column it reads
    it from by default; a card or recipe may point a logical field at another column.
    ``optional_fields`` are logical fields read only when mapped (e.g. ``system``).
    ``version`` changes whenever the output for the same input changes (it is part of the data
    cache key). ``convert(row, fields)`` returns a record or raises BadRow. Every default maps a
    logical field to the column of the same name, so ``convert`` gives the same result whether it
    is handed the merged mapping or only the overrides.
    """

    name: str
    kind: str
    version: int
    default_fields: dict[str, str]
    convert: Callable[[dict, Mapping[str, str]], Record]
    optional_fields: tuple[str, ...] = ()

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
