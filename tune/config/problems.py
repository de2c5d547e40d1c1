"""Recipe problems and the one error that carries them.

Every problem renders as one line a person can act on::

    recipes/x.yaml:12:3: train.lrr: unknown key; expected one of: epochs, lr, ... (did you mean 'lr'?)

i.e. ``<where>: <dotted.key>: <what is wrong>; expected <what>`` plus a suggestion for near misses.
``RecipeError`` collects every problem found in one pass, so a user fixes them all at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from tune.config.positions import Position
from tune.errors import UserError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a recipe: where, which key (None for the whole file), what, and what was expected."""

    position: Position
    key: str | None
    what: str
    expected: str | None = None
    suggestion: str | None = None

    def render(self) -> str:
        """The problem as one line (see the module docstring)."""
        text = f"{self.position.label()}: "
        if self.key:
            text += f"{self.key}: "
        text += self.what
        if self.expected:
            text += f"; expected {self.expected}"
        if self.suggestion:
            text += f" (did you mean '{self.suggestion}'?)"
        return text


class RecipeError(UserError):
    """A recipe could not be loaded; ``problems`` lists every problem found, in reading order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(p.render() for p in self.problems))

    def lines(self) -> list[str]:
        """One rendered line per problem."""
        return [p.render() for p in self.problems]


def close_matches(word: object, choices: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` choices like ``word``, most alike first (difflib, cutoff 0.6); empty when ``word`` is not text.

    The one "did you mean" rule of tune: every suggestion, in recipes, cards, presets and verbs, comes from here.
    """
    if not isinstance(word, str):
        return []
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)


def closest(word: object, choices: Iterable[str]) -> str | None:
    """The choice most like ``word`` (see ``close_matches``), or None when none is close."""
    matches = close_matches(word, choices, n=1)
    return matches[0] if matches else None


def reading_order(problems: list[Problem], top_source: str) -> list[Problem]:
    """``problems`` sorted as a person reads them, duplicates dropped: the named file first, by line;
    then base files; then overrides."""
    ranks: dict[str, int] = {top_source: 0}
    for problem in problems:
        if problem.position.line is not None:
            ranks.setdefault(problem.position.source, len(ranks))
    overrides_rank = len(ranks)

    def key(problem: Problem) -> tuple[int, int, int]:
        pos = problem.position
        return (ranks.get(pos.source, overrides_rank), pos.line or 0, pos.column or 0)

    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=key)


def one_of(choices: Iterable[object]) -> str:
    """``one of: a, b, c`` for a list of allowed values."""
    return "one of: " + ", ".join(str(c) for c in choices)
