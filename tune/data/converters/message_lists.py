"""Turning a list of chat-style message objects into canonical messages.

Shared by the ``messages``, ``sharegpt`` (role/content turns) and ``preference`` converters. A
source message keeps ``role``, ``content``, ``thinking`` and ``tool_calls``; other keys (``name``,
``tool_call_id``, ``id``...) are dropped. Null keys count as absent, at every depth
(tune.data.converters.row_fields: parquet gives every message every key).

Tool calls are normalised to ``{"name", "arguments"}``: the OpenAI shape
``{"type": "function", "function": {"name", "arguments"}, "id"}`` is unwrapped, and arguments
given as a JSON string holding an object are decoded to that object (any other string is kept
as it is), so that the same call renders the same way whichever shape it came in. Arguments
compare as parsed JSON whatever file they came from: Arrow unifies the argument objects of a
file into one struct, adding null for every key a call lacks, and those null keys are removed
(so is a key whose own value is null, which Arrow's cannot be told from: ``{"unit": null}``
becomes ``{}``, from JSONL too). Arrow may also order an object's keys as the file's first row
with them did; the record keeps the order it is handed, so the rendered text follows it.
Type checks beyond that are left to ``check_conversation``.
"""

from __future__ import annotations

import json

from tune.data import json_text
from tune.data.converters.row_fields import without_nulls
from tune.data.records import BadRow, type_name

KEPT_KEYS = ("role", "content", "thinking", "tool_calls")


def canonical_messages(value: list, label: str) -> tuple[list[dict], list[str]]:
    """The canonical messages of source list ``value`` (named ``label`` in details) and their labels.

    Raises BadRow("not_an_object") for an element that is not an object, and BadRow("bad_tool_call")
    for a tool call that cannot be normalised.
    """
    where = [f"{label}[{index}]" for index in range(len(value))]
    return [canonical_message(message, here) for message, here in zip(value, where)], where


def canonical_message(message, label: str) -> dict:
    """One source message (named ``label``) as a canonical message (module docstring).

    A message with tool calls and no content gets empty content. Raises BadRow("not_an_object")
    and BadRow("bad_tool_call") as ``canonical_messages`` does.
    """
    if not isinstance(message, dict):
        raise BadRow("not_an_object", f"{label} is {type_name(message)}, expected an object")
    canonical = {key: message[key] for key in KEPT_KEYS if message.get(key) is not None}
    if "tool_calls" in canonical:
        canonical["tool_calls"] = normalise_tool_calls(canonical["tool_calls"], f"{label}.tool_calls")
    if "content" not in canonical and canonical.get("tool_calls"):
        canonical["content"] = ""
    return canonical


def normalise_tool_calls(calls, label: str) -> list[dict]:
    """``calls`` as ``[{"name", "arguments"}]``, null keys removed at every depth (module docstring);
    BadRow("bad_tool_call") when that is impossible."""
    if not isinstance(calls, (list, tuple)):
        raise BadRow("bad_tool_call", f"{label} is {type_name(calls)}, expected a list")
    normalised = []
    for index, call in enumerate(without_nulls(calls)):
        here = f"{label}[{index}]"
        if not isinstance(call, dict):
            raise BadRow("bad_tool_call", f"{here} is {type_name(call)}, expected an object")
        body = call.get("function") if isinstance(call.get("function"), dict) else call
        if body.get("name") is None:
            raise BadRow("bad_tool_call", f"{here} has no `name`")
        arguments = body.get("arguments")
        if arguments is None:
            arguments = {}
        normalised.append({"name": body["name"], "arguments": _decoded(arguments, f"{here}.arguments")})
    return normalised


def _decoded(arguments, label: str):
    """A JSON string holding an object as that object; any other string as it is. BadRow for JSON
    Python cannot hold (tune.data.json_text)."""
    if isinstance(arguments, str):
        try:
            value = json_text.loads(arguments, label)
        except json.JSONDecodeError:
            return arguments
        if isinstance(value, dict):
            return without_nulls(value)
    return arguments
