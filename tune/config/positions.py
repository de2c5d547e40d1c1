"""Where each value of a recipe was written: file, line and column, by dotted key path.

A dotted path names a key the way errors print it: ``train.lr``, ``data.datasets.0.path``
(list items by index). The empty path ``""`` is the whole recipe. A ``PositionMap`` records, for
every path, where its key was written and where its value starts; values set on the command
line get a position whose source is the override text instead of a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Position:
    """A place in a recipe: ``source`` (a file as shown to the user, or an override's text),
    1-based ``line``/``column`` when known, and ``file`` (absolute) when the source is a file."""

    source: str
    line: int | None = None
    column: int | None = None
    file: Path | None = None

    def label(self) -> str:
        """``file:line:col``, or just the source when there is no line."""
        if self.line is None:
            return self.source
        return f"{self.source}:{self.line}:{self.column or 1}"

    @property
    def folder(self) -> Path:
        """The folder relative paths written here are read from (the current one for overrides)."""
        return self.file.parent if self.file is not None else Path.cwd()


def join(path: str, part: str | int) -> str:
    """The dotted path of child ``part`` of ``path``."""
    return f"{path}.{part}" if path else str(part)


def parent(path: str) -> str:
    """The dotted path one level up (``""`` above a top-level key)."""
    return path.rpartition(".")[0]


def _in_subtree(candidate: str, path: str) -> bool:
    return not path or candidate == path or candidate.startswith(path + ".")


@dataclass
class PositionMap:
    """Key and value positions by dotted path, plus ``root`` (the top of the recipe file)."""

    root: Position
    keys: dict[str, Position] = field(default_factory=dict)
    values: dict[str, Position] = field(default_factory=dict)

    def record(self, path: str, key: Position, value: Position) -> None:
        self.keys[path] = key
        self.values[path] = value

    def key(self, path: str) -> Position:
        """Where the key ``path`` was written, else where its nearest recorded parent was."""
        return self._nearest(path, self.keys)

    def value(self, path: str) -> Position:
        """Where the value of ``path`` starts, else the nearest recorded parent key."""
        if path in self.values:
            return self.values[path]
        return self._nearest(path, self.keys)

    def _nearest(self, path: str, table: dict[str, Position]) -> Position:
        while path:
            if path in table:
                return table[path]
            path = parent(path)
        return self.root

    def drop(self, path: str) -> None:
        """Forget ``path`` and everything below it."""
        for table in (self.keys, self.values):
            for p in [p for p in table if _in_subtree(p, path)]:
                del table[p]

    def copy_from(self, other: "PositionMap", path: str) -> None:
        """Take ``other``'s positions for ``path`` and everything below it."""
        for mine, theirs in ((self.keys, other.keys), (self.values, other.values)):
            mine.update({p: pos for p, pos in theirs.items() if _in_subtree(p, path)})

    def copy(self) -> "PositionMap":
        return PositionMap(self.root, dict(self.keys), dict(self.values))
