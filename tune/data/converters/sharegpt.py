"""`sharegpt`: rows with a `conversations` list of `{from, value}` turns.

    {"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}]}

``from`` is matched case-insensitively: human / user / prompter -> user; gpt / assistant / bot /
model / chatgpt -> assistant; system; tool / function / observation / function_response -> tool;
function_call -> an assistant tool call whose ``value`` is a JSON object ``{"name", "arguments"}``.
Anything else is an unknown role. An optional ``system`` column (Daring-Anteater keeps its
system prompt there) becomes a leading system message when non-blank.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from tune.data.converters.row_fields import column, get_list, optional_system, require_object
from tune.data.converters.message_lists import normalise_tool_calls
from tune.data.converters.base import Converter
from tune.data.records import BadRow, Conversation, check_conversation, type_name

ROLE_OF = {
    **dict.fromkeys(("human", "user", "prompter"), "user"),
    **dict.fromkeys(("gpt", "assistant", "bot", "model", "chatgpt"), "assistant"),
    "system": "system",
    **dict.fromkeys(("tool", "function", "observation", "function_response"), "tool"),
}
TOOL_CALL = "function_call"


def convert(row, fields: Mapping[str, str]) -> Conversation:
    """The conversation in ``row``; BadRow for an unknown speaker or a rule of check_conversation."""
    row = require_object(row)
    name = column(fields, "conversations")
    messages, where = [], []
    for message, label in optional_system(row, fields):
        messages.append(message)
        where.append(label)
    for index, turn in enumerate(get_list(row, fields, "conversations")):
        label = f"{name}[{index}]"
        messages.append(_message(turn, label))
        where.append(label)
    check_conversation(messages, where)
    return Conversation(tuple(messages))


def _message(turn, label: str) -> dict:
    if not isinstance(turn, dict):
        raise BadRow("not_an_object", f"{label} is {type_name(turn)}, expected an object")
    speaker, value = turn.get("from"), turn.get("value")
    if speaker is None:
        raise BadRow("missing_field", f"{label}.from is missing")
    if value is None:
        raise BadRow("missing_field", f"{label}.value is missing")
    if not isinstance(value, str):
        raise BadRow("non_string_content", f"{label}.value is {type_name(value)}, expected a string")
    key = str(speaker).strip().lower()
    if key == TOOL_CALL:
        return {"role": "assistant", "content": "", "tool_calls": _tool_call(value, label)}
    if key not in ROLE_OF:
        known = ", ".join([*ROLE_OF, TOOL_CALL])
        raise BadRow("unknown_role", f"{label}.from is {speaker!r}; expected one of {known}")
    return {"role": ROLE_OF[key], "content": value}


def _tool_call(value: str, label: str) -> list[dict]:
    try:
        call = json.loads(value)
    except json.JSONDecodeError as err:
        raise BadRow("bad_tool_call", f"{label}.value of a function_call is not valid JSON ({err.msg})") from None
    return normalise_tool_calls([call], f"{label}.value")


CONVERTER = Converter(
    name="sharegpt",
    kind="sft",
    version=1,
    default_fields={"conversations": "conversations"},
    convert=convert,
    optional_fields=("system",),
)
