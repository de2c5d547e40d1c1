"""JSON text read as tune reads data: what Python cannot hold is a bad row, never a traceback.

``loads(text, what)`` is ``json.loads`` for the JSON tune reads from data (a .jsonl line, a .json
element, a parquet JSON column, a field some copies store as a JSON string). Beyond what
``json.loads`` refuses (``json.JSONDecodeError``, left to the caller, who words it), it raises
``BadRow`` for JSON that is valid but that Python, or a later step, cannot hold:

    number_too_long   an integer with more digits than Python converts (``sys.get_int_max_str_digits``,
                      4300 by default); ``json.loads`` raises a bare ValueError
    too_deep          lists and objects nested more than ``MAX_NESTING`` levels (the row itself is
                      level 1); ``json.loads`` raises RecursionError near 1000 levels, and a row
                      that parses a little below that fails later, in recursive steps (dropping
                      null keys, the chat template's ``tojson``), so the bound is far below
    lone_surrogate    a string or key holding a lone UTF-16 surrogate (an unpaired ``\\ud800``-
                      ``\\udfff`` escape): a Python string, but not text; encoding it as UTF-8 fails
                      (the Arrow files, the cache key, the tokenizer)

``check_parsed(value, raw, what)`` applies the last two checks to a value already parsed from the
JSON text ``raw``. Both are cheap for ordinary rows: the value is walked only when ``raw`` holds
more than ``MAX_NESTING`` brackets or a ``\\u`` escape in the surrogate range.

``what`` names the text in details, as the caller's location does ("line 3", "`messages`").
"""

from __future__ import annotations

import json
import re
import sys

from tune.data.records import BadRow

# Deepest nesting of lists and objects a row may have (the row itself is level 1). Real rows nest a
# handful of levels (row -> messages -> message -> tool_calls -> call -> arguments -> ...).
MAX_NESTING = 100

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# A lone surrogate in a Python string (also what undecodable bytes become under errors="surrogateescape").
SURROGATE = re.compile("[\ud800-\udfff]")


def loads(text: str, what: str):
    """The value of JSON ``text`` (module docstring). Raises json.JSONDecodeError for text that is
    not JSON, BadRow (number_too_long, too_deep, lone_surrogate) for JSON Python cannot hold."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise too_deep(what) from None
    except ValueError as err:  # int() refused a digit string: the only ValueError json.loads raises besides JSONDecodeError
        raise _unreadable_number(text, what, err) from None
    check_parsed(value, text, what)
    return value


def check_parsed(value, raw: str, what: str) -> None:
    """Return quietly when ``value`` (parsed from JSON text ``raw``) nests at most MAX_NESTING levels
    and holds no lone surrogate in any string or key; raise BadRow (too_deep, lone_surrogate) otherwise."""
    deep = raw.count("[") + raw.count("{") > MAX_NESTING
    if not deep and not (("\\ud" in raw or "\\uD" in raw) and _SURROGATE_ESCAPE.search(raw)):
        return
    stack = [(value, 1, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            _check_text(item, path, what)
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_NESTING:
            raise too_deep(what)
        if isinstance(item, dict):
            for key, child in item.items():
                here = f"{path}.{key}" if path else str(key)
                _check_text(key, here, what, key=True)
                stack.append((child, depth + 1, here))
        else:
            stack.extend((child, depth + 1, f"{path}[{index}]") for index, child in enumerate(item))


def too_deep(what: str) -> BadRow:
    """The BadRow for text nested deeper than MAX_NESTING (or than Python's JSON reader reaches)."""
    return BadRow("too_deep", f"{what} nests lists and objects more than {MAX_NESTING} levels deep")


def lone_surrogate_detail(text: str, position: int) -> str:
    """Words for the lone surrogate at ``position`` of ``text``: the code point and what precedes it."""
    before = text[max(0, position - 20):position]
    return f"a lone UTF-16 surrogate (\\u{ord(text[position]):04x}) " + (f"after {before!r}" if before else "at its start")


def _check_text(text: str, path: str, what: str, key: bool = False) -> None:
    found = SURROGATE.search(text)
    if found is None:
        return
    where = f"the key {path!r}" if key else (f"`{path}`" if path else "the value")
    raise BadRow("lone_surrogate", f"{what}: {where} holds {lone_surrogate_detail(text, found.start())}, which is "
                                   "not text (an unpaired \\ud800-\\udfff escape); fix or remove it")


def _unreadable_number(text: str, what: str, err: ValueError) -> BadRow:
    """Why ``json.loads(text)`` raised ``err``: an integer past the digit limit (number_too_long)."""
    limit = sys.get_int_max_str_digits()
    longest = 0

    def parse_int(digits: str) -> int:
        nonlocal longest
        count = len(digits.lstrip("-"))
        if limit and count > limit:
            longest = max(longest, count)
            return 0
        return int(digits)

    try:
        json.loads(text, parse_int=parse_int)
    except (ValueError, RecursionError):
        pass  # the first problem is the one reported
    if longest:
        return BadRow("number_too_long", f"{what} holds an integer of {longest} digits; Python reads integers "
                                         f"of at most {limit} digits (write it as a string)")
    return BadRow("invalid_json", f"{what} cannot be read as JSON ({err})")
