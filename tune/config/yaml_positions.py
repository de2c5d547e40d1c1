"""YAML reading that remembers where every key and value was written.

``read_yaml_file`` parses one file with PyYAML's safe loader and returns plain Python data (dicts,
lists, scalars) plus a ``PositionMap`` of every dotted key path. It differs from ``yaml.safe_load``
in three ways, each on purpose:

- a key written twice in one mapping is an error (PyYAML silently keeps the last one);
- dates stay text (``2026-04-01`` is the string a recipe means, not a ``datetime.date``);
- a syntax error becomes a ``RecipeError`` at the parser's file:line:col;
- a YAML tag (``!!str 5``, ``!!set``, ``!custom {...}``) is refused wherever it stands, on a
  scalar, a list or a mapping: a recipe holds plain values, and a tag would either be ignored or
  build something no recipe key takes (a tag that changes nothing, ``!!str abc``, cannot be told
  from no tag and is harmless).

Anchors, aliases and ``<<`` merge keys work as in YAML 1.1, within bounds checked before anything
is expanded (``check_node_tree``): at most ``MAX_NODES`` values once every alias is expanded (a
recipe is small; a few lines of nested aliases can otherwise expand to billions of values, a
"billion laughs"), at most ``_MAX_DEPTH`` levels of nesting, and no alias inside its own anchor.
The check walks each written node once, so refusing takes milliseconds whatever the expansion.

Why, with the cases each check comes from: docs/validation.md
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
# Most values (mapping keys, values and list items, every alias expanded) a recipe file or an
# override may hold. The largest shipped recipe holds under a hundred; a mixture of a thousand
# datasets stays under this; a file at the bound reads in about 0.3 s.
MAX_NODES = 20_000


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

    Raises ``yaml.YAMLError`` for text that is not valid YAML, and ``UnreadableValue`` for YAML that
    ``check_node_tree`` refuses (a tag, too many values once aliases expand, nesting too deep).
    """
    loader = RecipeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise UnreadableValue(f"nesting too deep; expected at most {_MAX_DEPTH} levels") from None
        if node is None:
            return None
        problems = check_node_tree(node, lambda _node: Position("override"))
        if problems:
            first = problems[0]
            raise UnreadableValue(first.what + (f"; expected {first.expected}" if first.expected else ""))
        try:
            return loader.construct_document(node)
        except ValueError as exc:  # a number Python will not read: more than 4300 digits
            raise UnreadableValue(f"cannot read this value ({_short(exc)})") from None
    finally:
        loader.dispose()


def _short(exc: Exception) -> str:
    """The first clause of ``exc``'s message (Python's int-digits refusal runs on with advice for programmers)."""
    return str(exc).split(";")[0]


class UnreadableValue(ValueError):
    """Valid YAML that a recipe value may not be (``parse_scalar_text``); the message says why."""


def check_node_tree(root: Node, at) -> list[Problem]:
    """The problems of the composed YAML tree ``root`` that must stop reading before any value is
    built: explicit tags, an alias inside its own anchor, nesting deeper than ``_MAX_DEPTH``, more
    than ``MAX_NODES`` values once every alias is expanded. Each written node is visited once
    (aliases share nodes), so this takes time in the size of the text, not of the expansion.
    ``at(node)`` gives a node's position; a problem names the key path of the node's first use."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    problems: list[Problem] = []
    resolver = RecipeLoader("")

    def size(node: Node, path: str, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            problems.append(Problem(at(node), path or None, "an alias inside its own anchor (a recursive alias)",
                                    "an alias of a value written before it"))
            return 0
        if depth > _MAX_DEPTH:
            problems.append(Problem(at(node), path or None, "nesting too deep", f"at most {_MAX_DEPTH} levels"))
            return 0
        tag = explicit_tag(node, resolver)
        if tag is not None:
            problems.append(Problem(at(node), path or None, f"cannot read this value: YAML tags ({tag}) are not read in recipes",
                                    "a plain value without `!` tags (quote text that starts with `!`)"))
        open_nodes.add(key)
        total = 1
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                child = join(path, key_node.value) if isinstance(key_node, ScalarNode) else path
                total += size(key_node, path, depth + 1) + size(value_node, child, depth + 1)
                if total > MAX_NODES:
                    break
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                total += size(item, join(path, index), depth + 1)
                if total > MAX_NODES:
                    break
        open_nodes.discard(key)
        sizes[key] = total
        if total > MAX_NODES and not problems:  # the innermost value past the bound: where to look
            problems.append(Problem(at(node), path or None, f"more than {MAX_NODES:,} values once its aliases are "
                                    "expanded (nested aliases multiply)", f"a recipe of at most {MAX_NODES:,} values"))
        return total

    size(root, "", 0)
    return problems


def explicit_tag(node: Node, resolver: yaml.resolver.BaseResolver) -> str | None:
    """The tag written on ``node`` (``!!str``, ``!foo``), when it differs from the one YAML gives
    the same text untagged (then it changes what the value means); None otherwise."""
    if isinstance(node, ScalarNode):
        implicit = resolver.resolve(ScalarNode, node.value, (node.style is None, False))
    elif isinstance(node, SequenceNode):
        implicit = resolver.DEFAULT_SEQUENCE_TAG
    else:
        implicit = resolver.DEFAULT_MAPPING_TAG
    if node.tag == implicit:
        return None
    return node.tag.replace("tag:yaml.org,2002:", "!!")


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
    except RecursionError:  # PyYAML composes recursively: a few hundred levels exhaust the stack
        raise RecipeError([Problem(file_position(path), None, "nesting too deep", f"at most {_MAX_DEPTH} levels")]) from None
    finally:
        loader.dispose()


def _syntax_problem(path: Path, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    what = "invalid YAML: " + ", ".join(part for part in (exc.context, exc.problem) if part)
    return Problem(file_position(path, mark), None, what, "valid YAML (check indentation, colons and quotes)")


def read_yaml_file(path: Path) -> tuple[Any, PositionMap]:
    """The data of YAML file ``path`` and the position of every key and value in it.

    Refuses, with a ``RecipeError`` listing every problem: unreadable files, syntax errors, keys
    written twice in one mapping, keys that are not plain scalars, ``!tags``, and what
    ``check_node_tree`` refuses (alias expansion past ``MAX_NODES``, nesting, recursive aliases).
    """
    node = compose_file(path)
    positions = PositionMap(file_position(path))
    if node is None:
        return None, positions
    top = positions.root
    problems = check_node_tree(node, lambda n: Position(top.source, n.start_mark.line + 1, n.start_mark.column + 1, top.file))
    if problems:
        raise RecipeError(sorted(problems, key=lambda p: (p.position.line, p.position.column)))
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
        self.top = file_position(path)  # the file's name as shown, computed once

    def at(self, node: Node) -> Position:
        mark = node.start_mark
        return Position(self.top.source, mark.line + 1, mark.column + 1, self.top.file)

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
        except ValueError as exc:  # a number Python will not read: more than 4300 digits
            self.problems.append(Problem(self.at(node), path or None, f"cannot read this value ({_short(exc)})", "a plain YAML value"))
            return None

    def build_mapping(self, node: MappingNode, path: str, depth: int) -> dict:
        self.check_duplicates(node, path)
        try:
            self.constructor.flatten_mapping(node)  # applies `<<` merge keys, merged keys first
        except yaml.MarkedYAMLError as exc:
            self.problems.append(Problem(file_position(self.path, exc.problem_mark), path or None,
                                         f"cannot merge this value ({exc.problem})", "`<<: *anchor` of a mapping, or a list of them"))
            return {}
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
