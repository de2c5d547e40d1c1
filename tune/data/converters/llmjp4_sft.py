"""`llmjp4_sft`: rows of llm-jp/llm-jp-4-thinking-sft-data (Harmony-style messages).

What we know of the published schema (llmjp4.md [S]; third-party loaders of the dataset): a row
has an ``ID`` and a ``messages`` list; ``content`` is a list of ``{"type": "text", "text": ...}``
blocks; assistant messages carry ``channel: analysis | final``; the system message's content
is an object with model_identity, reasoning_effort, conversation_start_date, knowledge_cutoff
and channel_config. What is assumed, not confirmed:

* the system object sits in the content list (``[{"type": "system_content", ...}]``, the shape
  openai-harmony's ``to_dict`` writes) or is the content itself; both are accepted;
* a developer message may carry ``{"type": "developer_content", "instructions": ...}``
  (openai-harmony again); its instructions become the developer text, declared tools are refused;
* several text blocks of one message are concatenated with nothing between them, as Harmony
  renders them; a plain string content is accepted too;
* reasoning_effort may be capitalised ("High", openai-harmony's enum values): it is lower-cased;
* ``messages`` stored as a JSON string is decoded.

Conversion: the system object is not a message (the chat template writes the system block from
the recipe's pinned values); its reasoning_effort goes to the record. An ``analysis`` assistant
message followed by a ``final`` one becomes one assistant message with ``thinking``; an analysis
message with no final message after it is an empty assistant turn (bad row), and so is a second
analysis message in a row (role_order). Other channels (``commentary``: tool calls) are refused.
A missing channel counts as final.
"""

from __future__ import annotations

from collections.abc import Mapping

from tune.data.converters.row_fields import column, get_list, require_object
from tune.data.converters.base import Converter
from tune.data.records import (
    REASONING_EFFORTS,
    BadRow,
    Conversation,
    check_conversation,
    type_name,
)

SYSTEM_OBJECT_KEYS = {"model_identity", "reasoning_effort", "conversation_start_date", "knowledge_cutoff", "channel_config"}
CHANNELS = ("analysis", "final")


def convert(row, fields: Mapping[str, str]) -> Conversation:
    """The conversation in ``row`` with analysis merged into thinking; BadRow when it cannot be."""
    row = require_object(row)
    name = column(fields, "messages")
    effort, messages, where = None, [], []
    pending: tuple[str, str, int] | None = None  # analysis text waiting for its final message, label, index
    for index, message in enumerate(get_list(row, fields, "messages")):
        label = f"{name}[{index}]"
        if not isinstance(message, dict):
            raise BadRow("not_an_object", f"{label} is {type_name(message)}, expected an object")
        role = message.get("role")
        if role is None:
            raise BadRow("missing_field", f"{label}.role is missing")
        system_object = _system_object(message.get("content")) if role == "system" else None
        if system_object is not None:
            if messages or pending:
                raise BadRow("role_order", f"{label} is a system message; a system message may only come first")
            effort = _effort(system_object, f"{label}.content")
            continue
        content = _text(message.get("content"), f"{label}.content")
        channel = message.get("channel") if role == "assistant" else None
        if channel == "analysis":
            if pending:
                raise BadRow("role_order", f"{label} is a second analysis message in a row; expected the final answer after {pending[1]}")
            pending = (content, label, index)
            continue
        if channel is not None and channel != "final":
            raise BadRow("bad_channel", f"{label}.channel is {channel!r}; the llmjp4_sft converter reads {' and '.join(CHANNELS)} only")
        if pending and role != "assistant":
            raise BadRow("empty_assistant", f"{pending[1]} is an analysis message with no final answer after it")
        canonical = {"role": role, "content": content}
        if pending:
            canonical["thinking"] = pending[0]
            label = f"{name}[{pending[2]}..{index}]"
            pending = None
        elif message.get("thinking") is not None:
            canonical["thinking"] = message["thinking"]
        messages.append(canonical)
        where.append(label)
    if pending:
        raise BadRow("empty_assistant", f"{pending[1]} is an analysis message with no final answer after it")
    check_conversation(messages, where)
    return Conversation(tuple(messages), effort)


def _system_object(content) -> dict | None:
    candidates = content if isinstance(content, list) else [content]
    first = candidates[0] if candidates else None
    if isinstance(first, dict) and (first.get("type") == "system_content" or SYSTEM_OBJECT_KEYS & set(first)):
        return first
    return None


def _effort(system_object: dict, label: str) -> str | None:
    value = system_object.get("reasoning_effort")
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().lower() not in REASONING_EFFORTS:
        raise BadRow("bad_reasoning_effort", f"{label}.reasoning_effort is {value!r}; expected one of {', '.join(REASONING_EFFORTS)}")
    return value.strip().lower()


def _text(content, label: str) -> str:
    """The text of a content value: a string, or text blocks concatenated."""
    if content is None:
        raise BadRow("missing_field", f"{label} is missing")
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        raise BadRow("non_string_content", f"{label} is {type_name(content)}, expected text blocks or a string")
    return "".join(_block_text(block, f"{label}[{index}]") for index, block in enumerate(content))


def _block_text(block, label: str) -> str:
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        raise BadRow("bad_content_block", f"{label} is {type_name(block)}, expected a text block")
    kind = block.get("type")
    if kind == "text":
        if not isinstance(block.get("text"), str):
            raise BadRow("non_string_content", f"{label}.text is {type_name(block.get('text'))}, expected a string")
        return block["text"]
    if kind == "developer_content":
        if block.get("tools"):
            raise BadRow("bad_content_block", f"{label} declares tools; tool definitions are not supported")
        if not isinstance(block.get("instructions"), str):
            raise BadRow("non_string_content", f"{label}.instructions is {type_name(block.get('instructions'))}, expected a string")
        return block["instructions"]
    raise BadRow("bad_content_block", f"{label} is a block of type {kind!r}; expected type 'text'")


CONVERTER = Converter(name="llmjp4_sft", kind="sft", version=1, default_fields={"messages": "messages"}, convert=convert)
