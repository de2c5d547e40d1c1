"""YAML reading that remembers where every key and value was written.

``read_yaml_file`` parses one file with PyYAML's safe loader and returns plain Python data (dicts,
lists, scalars) plus a ``PositionMap`` of every dotted key path. It differs from ``yaml.safe_load``
in three ways, each on purpose:

- a key written twice in one mapping is an error (PyYAML silently keeps the last one);
- dates stay text (``2026-04-01`` is the string a recipe means, not a ``datetime.date``);
- a syntax error becomes a ``RecipeError`` at the parser's file:line:col.

Anchors, aliases and ``<<`` merge keys work as in YAML 1.1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tune.config.problems import Problem, RecipeError
from tune.config.positions import Position, PositionMap, join

# A value read from YAML (safe loader): what a recipe key or an override holds before validation.
YamlValue = Union[str, int, float, bool, None, list["YamlValue"], dict[str, "YamlValue"]]

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_MAX_DEPTH = 64


class RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader without the timestamp resolver (dates stay strings)."""


RecipeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def display_path(path: Path) -> str:
    """How a file is named in messages: relative to the current folder when inside it, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(absolute)


def file_position(path: Path, mark: yaml.Mark | None = None) -> Position:
    """The position of ``mark`` in file ``path`` (line 1, column 1 without a mark)."""
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return Position(display_path(path), line, column, Path(os.path.abspath(path)))


def parse_scalar_text(text: str) -> YamlValue:
    """``text`` read as one YAML value (``[a, b]``, ``null``, ``true``, ``3``), dates kept as text.

    Raises ``yaml.YAMLError`` for text that is not valid YAML.
    """
    return yaml.load(text, Loader=RecipeLoader)  # noqa: S506 - RecipeLoader is a SafeLoader


def compose_file(path: Path) -> Node | None:
    """The YAML node tree of ``path`` (None for an empty file); refuses unreadable or malformed files with a RecipeError."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError([Problem(file_position(path), None, f"the file is not UTF-8 text ({exc.reason})", "a UTF-8 YAML file")]) from None
    except OSError as exc:
        raise RecipeError([Problem(Position(display_path(path)), None, f"cannot read the file ({exc.strerror})", "a readable YAML file")]) from None
    loader = RecipeLoader(text)
    try:
        return loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise RecipeError([_syntax_problem(path, exc)]) from None
    finally:
        loader.dispose()


def _syntax_problem(path: Path, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    what = "invalid YAML: " + ", ".join(part for part in (exc.context, exc.problem) if part)
    return Problem(file_position(path, mark), None, what, "valid YAML (check indentation, colons and quotes)")


def read_yaml_file(path: Path) -> tuple[Any, PositionMap]:
    """The data of YAML file ``path`` and the position of every key and value in it.

    Refuses, with a ``RecipeError`` listing every problem: unreadable files, syntax errors, keys
    written twice in one mapping, keys that are not plain scalars, unknown ``!tags``.
    """
    node = compose_file(path)
    positions = PositionMap(file_position(path))
    if node is None:
        return None, positions
    walker = _Walker(path, positions)
    data = walker.build(node, "", 0)
    if walker.problems:
        raise RecipeError(sorted(walker.problems, key=lambda p: (p.position.line, p.position.column)))
    return data, positions


class _Walker:
    """Turns a node tree into Python data, recording positions and problems on the way."""

    def __init__(self, path: Path, positions: PositionMap) -> None:
        self.path = path
        self.positions = positions
        self.problems: list[Problem] = []
        self.constructor = RecipeLoader("")

    def at(self, node: Node) -> Position:
        return file_position(self.path, node.start_mark)

    def build(self, node: Node, path: str, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            self.problems.append(Problem(self.at(node), path or None, "nesting too deep (a recursive alias?)", f"at most {_MAX_DEPTH} levels"))
            return None
        if isinstance(node, MappingNode):
            return self.build_mapping(node, path, depth)
        if isinstance(node, SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                item_path = join(path, index)
                self.positions.record(item_path, self.at(item), self.at(item))
                items.append(self.build(item, item_path, depth + 1))
            return items
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            self.problems.append(Problem(self.at(node), path or None, f"cannot read this value ({exc.problem})", "a plain YAML value"))
            return None

    def build_mapping(self, node: MappingNode, path: str, depth: int) -> dict:
        self.check_duplicates(node, path)
        self.constructor.flatten_mapping(node)  # applies `<<` merge keys, merged keys first
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.problems.append(Problem(self.at(key_node), path or None, "a key must be a plain name", "`name: value`"))
                continue
            key_path = join(path, key_node.value)
            self.positions.record(key_path, self.at(key_node), self.at(value_node))
            result[key_node.value] = self.build(value_node, key_path, depth + 1)
        return result

    def check_duplicates(self, node: MappingNode, path: str) -> None:
        seen: dict[str, Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE:
                continue
            first = seen.setdefault(key_node.value, key_node)
            if first is not key_node:
                self.problems.append(
                    Problem(
                        self.at(key_node),
                        join(path, key_node.value),
                        f"duplicate key (first written on line {first.start_mark.line + 1})",
                        "each key once per mapping",
                    )
                )
