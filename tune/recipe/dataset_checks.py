"""`data.datasets` against the dataset cards, the converters and the method's kind of data.

Run on the recipe tree before schema validation (paths are already absolute, tune.config.paths):

- ``card`` must name a dataset card (`tune data ls`); ``format`` must name a converter.
- ``fields`` may map only the logical fields the converter reads (the card's converter, else
  ``format``'s) to non-empty column names; preparation would refuse anything else only after
  the model's tokenizer and the data had loaded.
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
        fields = _check_fields(entry, card, key, positions) if problem is None else []
        if problem is not None:
            problems.append(problem)
        elif fields:
            problems += fields
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


def _check_fields(entry: dict, card: Card | None, key: str, positions: PositionMap) -> list[Problem]:
    """A problem per `fields` entry the converter cannot use: a logical field it does not read
    (tune.data.converters.base.Converter.logical_fields), or an empty column name."""
    fields = entry.get("fields")
    if not isinstance(fields, dict):
        return []  # absent, or the schema reports the wrong type
    name = card.source.converter if card is not None else (entry.get("format") or "messages")
    converter = CONVERTERS[name]
    known = converter.logical_fields
    problems = []
    for logical, column in fields.items():
        path = f"{key}.fields.{logical}"
        if logical not in known:
            what = f"converter `{name}` reads no field {logical!r}" + (f" (the converter of card {card.name!r})" if card else "")
            problems.append(Problem(positions.key(path), path, what,
                                    f"a field it reads, mapped to a column name: {', '.join(known)}", closest(logical, known)))
        elif isinstance(column, str) and not column:
            problems.append(Problem(positions.value(path), path, "empty column name", "the name of the source column that holds it"))
    return problems


def _check_format(entry: dict, key: str, positions: PositionMap) -> Problem | None:
    """A problem when ``format`` names no converter."""
    name = entry.get("format")
    if not isinstance(name, str) or name in CONVERTERS:
        return None
    return Problem(positions.value(key), key, f"unknown format {name!r}", one_of(CONVERTERS), closest(name, CONVERTERS))
