"""Pydantic validation errors turned into recipe problems a person can act on.

Each pydantic error names a ``loc`` and a ``type``; we map the ``loc`` to a dotted key and the
position it was written at (``tune.config.positions``), and the ``type`` to our own words:
unknown key, missing key, wrong type, out of range, invalid choice, a section's own check.
Pydantic's raw message (and its documentation URL) is never shown, except as a last resort
for an error type we do not know, and then only its short ``msg``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from tune.config.problems import Problem, closest, one_of
from tune.config.positions import PositionMap, parent
from tune.config.schema import METHOD_NAMES, METHOD_SECTIONS, Recipe
from tune.config.schema_info import Located, describe, field_names, literal_choices, locate, number_word

_BOUNDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="), "less_than": ("lt", "<"), "less_than_equal": ("le", "<=")}
_PATTERNS = {r"^\d{4}-\d{2}-\d{2}$": "a date written YYYY-MM-DD"}


def validate(tree: dict, positions: PositionMap) -> tuple[Recipe | None, list[Problem]]:
    """``tree`` validated into a Recipe, or None and one problem per thing wrong (several pydantic
    errors about one union field become one problem)."""
    try:
        return Recipe.model_validate(tree), []
    except ValidationError as exc:
        return None, problems_from(exc, tree, positions)


def problems_from(exc: ValidationError, tree: dict, positions: PositionMap) -> list[Problem]:
    """One problem per error of ``exc``, in pydantic's order, located with ``positions``."""
    problems: list[Problem] = []
    seen_unions: set[str] = set()
    for error in exc.errors(include_url=False):
        located = locate(tuple(error["loc"]))
        if located.union_path is not None:
            if located.union_path in seen_unions:
                continue
            seen_unions.add(located.union_path)
            problems.append(_union_problem(located, tree, positions))
        else:
            problems.append(_problem(error, located, positions))
    return problems


def _problem(error: dict, located: Located, positions: PositionMap) -> Problem:
    kind, ctx, value, path = error["type"], error.get("ctx") or {}, error.get("input"), located.path
    at_value = positions.value(path)
    if kind == "method_choice":
        return _method_problem(value, path, positions)
    if kind == "extra_forbidden":
        owner = _other_method_owning(located, path)
        if owner is not None:
            return Problem(positions.key(path), path, f"a key of method `{owner}`, not of `{located.section.model_fields['name'].default}`",
                           f"method.name: {owner}, or no `{path.rpartition('.')[2]}`")
        names = field_names(located.section) if located.section else []
        section, suggestion = parent(path), closest(path.rpartition(".")[2], names)
        expected = f"a key of `{section}`" if section else "a top-level key"
        if suggestion is None:
            expected += ", " + one_of(names)
        return Problem(positions.key(path), path, "unknown key", expected, suggestion)
    if kind == "missing":
        return Problem(positions.key(parent(path)), path, "missing required key", describe(located.annotation, path))
    if kind in ("value_error", "assertion_error"):
        return Problem(positions.key(path), path or None, str(ctx.get("error", error["msg"])))
    if kind == "literal_error":
        choices = literal_choices(located.annotation)
        return Problem(at_value, path, f"invalid choice {show(value)}", one_of(choices), closest(value, map(str, choices)))
    if kind in _BOUNDS:
        name, sign = _BOUNDS[kind]
        return Problem(at_value, path, f"out of range: got {show(value)}", f"{number_word(located.annotation)} {sign} {show(ctx[name])}")
    if kind in ("too_short", "too_long"):
        bound = f"at least {ctx.get('min_length')}" if kind == "too_short" else f"at most {ctx.get('max_length')}"
        return Problem(at_value, path, f"{'too few' if kind == 'too_short' else 'too many'} items", f"{bound} item(s)")
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        return Problem(at_value, path, f"got {show(value)}", _PATTERNS.get(pattern, f"text matching {pattern}"))
    if located.annotation is not None and (kind.endswith(("_type", "_parsing")) or kind in ("int_from_float", "bool_parsing")):
        return Problem(at_value, path, f"wrong type: got {show(value)}", describe(located.annotation, path))
    return Problem(at_value, path or None, f"invalid value {show(value)}: {error['msg'].lower()}")


def _other_method_owning(located: Located, path: str) -> str | None:
    """The method whose section has the key ``path`` names, when the recipe's own method section lacks it."""
    if located.section not in METHOD_SECTIONS or path.count(".") != 1:
        return None
    key = path.rpartition(".")[2]
    return next((name for name, cls in zip(METHOD_NAMES, METHOD_SECTIONS) if key in cls.model_fields), None)


def _method_problem(value: Any, path: str, positions: PositionMap) -> Problem:
    """A `method` section that is no mapping, or names no method tune has."""
    if not isinstance(value, dict):
        return Problem(positions.value(path), path, f"wrong type: got {show(value)}", f"a mapping (the `{path}` section)")
    name, key = value.get("name"), f"{path}.name"
    return Problem(positions.value(key), key, f"invalid choice {show(name)}", one_of(METHOD_NAMES), closest(name, METHOD_NAMES))


def _union_problem(located: Located, tree: dict, positions: PositionMap) -> Problem:
    path = located.union_path or ""
    value = lookup(tree, path)
    choices = [str(c) for c in literal_choices(located.union_annotation)]
    return Problem(positions.value(path), path, f"invalid value {show(value)}", describe(located.union_annotation, path), closest(value, choices))


def lookup(tree: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``tree`` (None when absent)."""
    node = tree
    for part in path.split(".") if path else []:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def show(value: Any) -> str:
    """A short, YAML-like rendering of a user's value for messages."""
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    text = json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, list) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
