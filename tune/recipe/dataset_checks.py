"""`data.datasets` against the dataset cards, the converters and the method's kind of data.

Run on the recipe tree before schema validation (paths are already absolute, tune.config.paths):

- ``card`` must name a dataset card (`tune data ls`); ``format`` must name a converter.
- The dataset's rows (the card's kind, or the format's) must be what ``method.name`` trains on
  (tune.config.methods.METHODS: `sft` trains on conversations, `dpo` on preference pairs).
- An entry without ``share`` gets the card's default weight (1 for a plain file) when it sets
  none, so the resolved recipe shows it.
"""

from __future__ import annotations

from tune.config.methods import METHODS
from tune.config.paths import dataset_entries, section
from tune.config.positions import PositionMap
from tune.config.problems import Problem, closest, one_of
from tune.data.cards import Card, card_names, load_card
from tune.data.converters import CONVERTERS


def resolve_datasets(tree: dict, positions: PositionMap) -> list[Problem]:
    """Check each dataset's card, format and kind, and fill in default weights."""
    problems = []
    for index, entry in dataset_entries(tree):
        key = f"data.datasets.{index}"
        card, problem = _check_card(entry, key, positions)
        if problem is None:
            problem = _check_format(entry, f"{key}.format", positions)
        if problem is None:
            problem = _check_kind(entry, card, _method_name(tree), key, positions)
        if problem is not None:
            problems.append(problem)
        elif "share" not in entry or entry["share"] is None:
            entry.setdefault("weight", card.default_weight if card is not None else 1.0)
    return problems


def _method_name(tree: dict):
    method = section(tree, "method")
    return method.get("name", "sft") if method is not None else "sft"


def _check_kind(entry: dict, card: Card | None, method, key: str, positions: PositionMap) -> Problem | None:
    """A problem when the dataset holds rows of another kind than the method trains on."""
    if method not in METHODS:
        return None  # an unknown method name: the schema reports it
    converter = entry.get("format") or "messages"
    kind = card.kind if card is not None else getattr(CONVERTERS.get(converter), "kind", None)
    row = METHODS[method]
    if kind is None or kind == row.data_kind:
        return None
    name = f"card {card.name!r}" if card is not None else f"format {converter!r}"
    return Problem(positions.key(key), key, f"{name} holds {kind} rows, and method `{method}` trains on {row.trains_on}",
                   "a dataset of that kind, or another method.name")


def _check_card(entry: dict, key: str, positions: PositionMap) -> tuple[Card | None, Problem | None]:
    """The card ``entry`` names (None for a plain file), or a problem for an unknown card name."""
    name = entry.get("card")
    if not isinstance(name, str):
        return None, None
    if name not in card_names():
        what = f"no dataset card named {name!r}"
        return None, Problem(positions.value(f"{key}.card"), f"{key}.card", what,
                             "a card listed by `tune data ls`", closest(name, card_names()))
    return load_card(name), None


def _check_format(entry: dict, key: str, positions: PositionMap) -> Problem | None:
    """A problem when ``format`` names no converter."""
    name = entry.get("format")
    if not isinstance(name, str) or name in CONVERTERS:
        return None
    return Problem(positions.value(key), key, f"unknown format {name!r}", one_of(CONVERTERS), closest(name, CONVERTERS))
