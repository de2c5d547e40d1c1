"""`sharegpt`: rows with a `conversations` list of turns, `{from, value}` or `{role, content}`.

    {"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}]}
    {"conversations": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}

Two shapes, detected per row from the keys of its turns: ``from_value`` (the usual one) and
``role_content``. A row whose turns mix the two, or a turn carrying keys of both, is in neither
(bad row, unknown_shape); a row whose turns carry neither pair is read as ``from_value`` and
refused for its missing ``from``. Both shapes exist because copies of the same set are read both
ways (the dataset cards say which shapes each set has been seen in and on what evidence).

The speaker (``from`` or ``role``) is matched case-insensitively: human / user / prompter -> user;
gpt / assistant / bot / model / chatgpt -> assistant; system; tool / function / observation /
function_response -> tool; function_call -> an assistant tool call whose text is a JSON object
``{"name", "arguments"}``. Anything else is an unknown role. A ``role_content`` turn is read like
a message of the ``messages`` converter besides: its ``thinking`` and ``tool_calls`` are kept
(tool calls normalised), other keys dropped. An optional ``system`` column (Daring-Anteater keeps
its system prompt there) becomes a leading system message when non-blank.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from tune.data import json_text
from tune.data.converters.row_fields import column, get_list, optional_system, source_row
from tune.data.converters.message_lists import canonical_message, normalise_tool_calls
from tune.data.converters.base import Converted, Converter
from tune.data.records import BadRow, Conversation, check_conversation, type_name

ROLE_OF = {
    **dict.fromkeys(("human", "user", "prompter"), "user"),
    **dict.fromkeys(("gpt", "assistant", "bot", "model", "chatgpt"), "assistant"),
    "system": "system",
    **dict.fromkeys(("tool", "function", "observation", "function_response"), "tool"),
}
TOOL_CALL = "function_call"
# shape name -> (speaker key, text key), the usual shape first
SHAPES = {"from_value": ("from", "value"), "role_content": ("role", "content")}


def read(row, fields: Mapping[str, str]) -> Converted:
    """The conversation in ``row`` and its shape; BadRow for an unknown speaker, a row in neither
    shape or a rule of check_conversation."""
    row = source_row(row)
    name = column(fields, "conversations")
    turns = get_list(row, fields, "conversations")
    shape = _shape(turns, name)
    messages, where = [], []
    for message, label in optional_system(row, fields):
        messages.append(message)
        where.append(label)
    for index, turn in enumerate(turns):
        label = f"{name}[{index}]"
        messages.append(_message(turn, label, shape))
        where.append(label)
    check_conversation(messages, where)
    return Converted(Conversation(tuple(messages)), shape)


def _shape(turns: list, name: str) -> str:
    """The shape of a row's turns (module docstring); BadRow("unknown_shape") for a mixture."""
    seen: dict[str, int] = {}  # shape -> index of the first turn in it
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict):
            continue
        shapes = [shape for shape, keys in SHAPES.items() if set(keys) & set(turn)]
        if len(shapes) > 1:
            raise BadRow("unknown_shape", f"{name}[{index}] has both from/value and role/content keys; "
                         "a turn is one or the other")
        for shape in shapes:
            seen.setdefault(shape, index)
    if len(seen) > 1:
        first, second = sorted(seen, key=seen.get)
        raise BadRow("unknown_shape", f"{name}[{seen[first]}] is a {_pair(first)} turn but {name}[{seen[second]}] "
                     f"is a {_pair(second)} turn; a row's turns are all one or all the other")
    return next(iter(seen), next(iter(SHAPES)))


def _pair(shape: str) -> str:
    return "/".join(SHAPES[shape])


def _message(turn, label: str, shape: str) -> dict:
    if not isinstance(turn, dict):
        raise BadRow("not_an_object", f"{label} is {type_name(turn)}, expected an object")
    speaker_key, text_key = SHAPES[shape]
    extra = canonical_message(turn, label) if shape == "role_content" else {}
    speaker, value = turn.get(speaker_key), extra.get("content", turn.get(text_key))
    if speaker is None:
        raise BadRow("missing_field", f"{label}.{speaker_key} is missing")
    if value is None:
        raise BadRow("missing_field", f"{label}.{text_key} is missing")
    if not isinstance(value, str):
        raise BadRow("non_string_content", f"{label}.{text_key} is {type_name(value)}, expected a string")
    key = str(speaker).strip().lower()
    if key == TOOL_CALL:
        return {"role": "assistant", "content": "", "tool_calls": _tool_call(value, f"{label}.{text_key}")}
    if key not in ROLE_OF:
        known = ", ".join([*ROLE_OF, TOOL_CALL])
        raise BadRow("unknown_role", f"{label}.{speaker_key} is {speaker!r}; expected one of {known}")
    return {**extra, "role": ROLE_OF[key], "content": value}


def _tool_call(value: str, label: str) -> list[dict]:
    try:
        call = json_text.loads(value, label)
    except json.JSONDecodeError as err:
        raise BadRow("bad_tool_call", f"{label} of a function_call is not valid JSON ({err.msg})") from None
    return normalise_tool_calls([call], label)


CONVERTER = Converter(
    name="sharegpt",
    kind="sft",
    version=2,  # 2: role/content rows read (they were bad rows)
    default_fields={"conversations": "conversations"},
    read=read,
    shapes=tuple(SHAPES),
    optional_fields=("system",),
)
