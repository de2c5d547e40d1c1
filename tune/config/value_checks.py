"""Checks of single values the schema's types let through, on the merged recipe tree.

Pydantic, in its default (lax) mode, accepts values a person never means, and the run then fails
late or, worse, trains something else. Run on the recipe tree before schema validation, each
value read against the annotation the schema gives its key (``tune.config.schema_info``), so
every section and every future field is covered without being listed here:

- **finite numbers everywhere**: ``.inf``, ``-.inf``, ``.nan`` are refused at every number key
  of the schema (any other key refuses a number anyway), and so is text a number key would read
  as one (``1e999``, ``inf``: YAML 1.1 keeps them as text, pydantic turns them into infinity).
  An infinite epoch count or weight ends in an OverflowError after data preparation and model
  loading; an infinite weight decay trains a NaN model.
- **whole numbers that fit in 64 bits**: every count and seed ends in a torch, numpy or Arrow
  int64; a larger one overflows there, after the data is prepared.
- **no booleans for numbers**: ``true`` / ``false`` at a key whose type is a number (pydantic
  reads them as 1 / 0: ``max_steps: true`` would train one step).
- **real calendar dates**: a text field whose schema pattern is a ``YYYY-MM-DD`` date must name a
  day of the calendar (``2026-13-45`` matches the pattern).

Keys the schema does not know are left to the schema (it reports them as unknown), and so are
values of the wrong type otherwise; ``load_recipe`` drops the schema's own problem for a key
reported here, so each key gets one line.

Why, with the cases each check comes from: docs/validation.md
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any, get_args, get_origin

from pydantic.fields import FieldInfo

from tune.config.positions import PositionMap, join
from tune.config.problems import Problem
from tune.config.schema import Recipe
from tune.config.schema_info import arms, as_model, describe, list_item, tagged_arm

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
INT64_LIMIT = 2**63  # every count and seed ends up in a 64-bit integer (torch, numpy, Arrow)


def value_problems(tree: dict, positions: PositionMap) -> list[Problem]:
    """One problem per value of ``tree`` that is not finite, a boolean where a number belongs, or a
    date that is not on the calendar (module docstring), at the value's position."""
    problems: list[Problem] = []
    _walk(tree, Recipe, None, "", positions, problems)
    return problems


def _walk(value: Any, annotation: Any, field: FieldInfo | None, path: str, positions: PositionMap,
          problems: list[Problem]) -> None:
    if annotation is None:
        return  # a key the schema does not know: it says so itself
    if isinstance(value, dict):
        model = _section_for(annotation, value)
        if model is not None:
            for key, item in value.items():
                child = model.model_fields.get(key) if isinstance(key, str) else None
                if child is not None:
                    _walk(item, child.annotation, child, join(path, key), positions, problems)
            return
        item_type = _mapping_value(annotation)
        for key, item in value.items():
            _walk(item, item_type, None, join(path, key), positions, problems)
        return
    if isinstance(value, list):
        item_type = list_item(annotation)
        for index, item in enumerate(value):
            _walk(item, item_type, None, join(path, index), positions, problems)
        return
    what = scalar_problem(value, annotation, field)
    if what is not None:
        problems.append(Problem(positions.value(path), path, *what))


def scalar_problem(value: Any, annotation: Any, field: FieldInfo | None = None) -> tuple[str, str] | None:
    """``(what, expected)`` when ``value`` is not finite, a boolean for a number, or a date off the
    calendar, for a key of type ``annotation`` (``field`` carries its schema constraints); else None."""
    types = arms(annotation)
    if isinstance(value, bool):
        if (int in types or float in types) and bool not in types:
            return f"wrong type: got {'true' if value else 'false'} (a boolean)", describe(annotation)
        return None
    number = _as_number(value) if (int in types or float in types) else None  # elsewhere a float is the wrong type
    if isinstance(number, int) and abs(number) >= INT64_LIMIT:
        return f"too large: got a whole number of {len(str(abs(number)))} digits", "a whole number below 2**63 (about 9.2e18)"
    if isinstance(number, float) and not math.isfinite(number):
        shown = ".nan" if math.isnan(number) else (".inf" if number > 0 else "-.inf")
        shown += f" (written {value!r})" if isinstance(value, str) else ""
        return f"not a finite number: got {shown}", "a finite " + ("whole number" if int in types and float not in types else "number")
    if isinstance(value, str) and field is not None and DATE_PATTERN in _patterns(field):
        if re.fullmatch(DATE_PATTERN, value):
            try:
                date.fromisoformat(value)
            except ValueError:
                return f"not a calendar date: got {value!r}", "a real date written YYYY-MM-DD (month 01-12, a day the month has)"
    return None


def _as_number(value: Any) -> Any:
    """``value``, or the float a number field would read from text (YAML 1.1 reads `1e999` and
    `inf` as text, and pydantic turns them into infinity)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _section_for(annotation: Any, value: dict):
    """The section model a mapping at ``annotation`` is read as: a tagged union's arm by its
    `name` (the `method` section), else the one model among the annotation's arms, else None."""
    name = value.get("name", "sft")
    if isinstance(name, str):
        arm = tagged_arm(annotation, name)
        if arm is not None:
            return arm
    return as_model(annotation)


def _mapping_value(annotation: Any) -> Any:
    """The value type of the ``dict[str, X]`` among ``annotation``'s arms, else None."""
    for arm in arms(annotation):
        if get_origin(arm) is dict:
            return get_args(arm)[1]
    return None


def _patterns(field: FieldInfo) -> list[str]:
    return [pattern for meta in field.metadata if isinstance(pattern := getattr(meta, "pattern", None), str)]
