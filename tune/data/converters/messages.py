"""`messages`: rows with a list of chat messages, the shape chat templates take.

    {"messages": [{"role": "system", "content": "..."},
                  {"role": "user", "content": "..."},
                  {"role": "assistant", "content": "...", "thinking": "...",
                   "tool_calls": [{"name": "f", "arguments": {...}}]},
                  {"role": "tool", "content": "..."}, ...]}

Roles: system, developer, user, assistant, tool. OpenAI-style tool calls are accepted and
normalised, null keys dropped at every depth (tune.data.converters.message_lists). One shape,
``messages``. Optional fields, read only when a card maps them:
``system`` (a column holding a system prompt, prepended when non-blank) and
``reasoning_effort`` (a column holding low / medium / high for the whole row).
Datasets that keep the list in another column (``conversations`` in llm-jp/magpie-sft-v1.0)
map ``messages`` to it.
"""

from __future__ import annotations

from collections.abc import Mapping

from tune.data.converters.row_fields import column, get_list, get_text, optional_system, source_row
from tune.data.converters.message_lists import canonical_messages
from tune.data.converters.base import Converted, Converter
from tune.data.records import REASONING_EFFORTS, BadRow, Conversation, check_conversation

SHAPE = "messages"  # the one shape: a list of {role, content, ...} messages


def read(row, fields: Mapping[str, str]) -> Converted:
    """The conversation in ``row``; BadRow when it breaks a rule of check_conversation."""
    row = source_row(row)
    head = optional_system(row, fields)
    messages, where = canonical_messages(get_list(row, fields, "messages"), column(fields, "messages"))
    messages = [m for m, _ in head] + messages
    where = [w for _, w in head] + where
    check_conversation(messages, where)
    return Converted(Conversation(tuple(messages), reasoning_effort(row, fields)), SHAPE)


def reasoning_effort(row: dict, fields: Mapping[str, str]) -> str | None:
    """The row's reasoning effort from the optional ``reasoning_effort`` column, lower-cased."""
    if "reasoning_effort" not in fields:
        return None
    value = get_text(row, fields, "reasoning_effort", required=False)
    if value is None:
        return None
    if value.strip().lower() not in REASONING_EFFORTS:
        raise BadRow("bad_reasoning_effort", f"`{column(fields, 'reasoning_effort')}` is {value!r}; expected one of {', '.join(REASONING_EFFORTS)}")
    return value.strip().lower()


CONVERTER = Converter(
    name="messages",
    kind="sft",
    version=2,  # 2: null keys inside tool-call arguments dropped
    default_fields={"messages": "messages"},
    read=read,
    shapes=(SHAPE,),
    optional_fields=("system", "reasoning_effort"),
)
