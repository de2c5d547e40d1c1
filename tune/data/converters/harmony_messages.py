"""Reading Harmony-style message lists (LLM-jp-4's post-training data) into canonical messages.

Shared by the ``llmjp4_sft`` converter (a row's ``messages``) and the ``preference`` converter (a
prompt or answer in that shape). What is known and what is assumed of the shape is in
tune.data.converters.llmjp4_sft's docstring; the rules:

* ``content`` is a list of ``{"type": "text", "text"}`` blocks, concatenated with nothing between
  them as Harmony renders them; one block object or a plain string is accepted too. A
  ``{"type": "developer_content", "instructions"}`` block gives its instructions (declared tools
  are refused). Any other block is a bad row (bad_content_block).
* A system message whose content is a system object (``{"type": "system_content", ...}`` or an
  object with model_identity, reasoning_effort, ...; in a list or bare) is not a message: the chat
  template writes the system block from the recipe's pinned values. Its reasoning_effort
  (lower-cased) is returned. A system message with text content stays a message.
* An assistant ``analysis`` message followed by a ``final`` one becomes one assistant message
  with ``thinking``; an analysis message with no final message after it is an empty assistant
  turn (bad row), and so is a second analysis message in a row (role_order). A missing channel
  counts as final; other channels (``commentary``: tool calls) are refused (bad_channel).
* ``thinking`` given as a key of a message is kept; other keys are dropped.

The list is expected with its null keys already removed (tune.data.converters.row_fields), so that
a text block Arrow gave ``model_identity: null`` is not taken for a system object.
"""

from __future__ import annotations

from tune.data.records import REASONING_EFFORTS, BadRow, type_name

SYSTEM_OBJECT_KEYS = {"model_identity", "reasoning_effort", "conversation_start_date", "knowledge_cutoff", "channel_config"}
CHANNELS = ("analysis", "final")


def is_harmony(messages: list) -> bool:
    """Whether a message list is in the Harmony shape: a message carries a ``channel``, or content
    made of objects (a list holding text blocks, or a system object itself)."""
    return any(isinstance(m, dict) and ("channel" in m or _object_content(m.get("content"))) for m in messages)


def _object_content(content) -> bool:
    return isinstance(content, dict) or (isinstance(content, list) and any(isinstance(b, dict) for b in content))


def harmony_messages(value: list, label: str, answer: bool = False) -> tuple[list[dict], list[str], str | None]:
    """The canonical messages of Harmony list ``value`` (named ``label`` in details), their source
    labels (``messages[3..4]`` for a merged analysis + final pair) and the reasoning effort of its
    system object (None without one). Raises BadRow by the rules of the module docstring, and
    BadRow("role_order") for a system object in an ``answer`` (a preference answer holds assistant
    messages only); the conversation rules themselves are left to the caller (check_conversation,
    check_preference).
    """
    effort, messages, where = None, [], []
    pending: tuple[str, str, int] | None = None  # analysis text waiting for its final message, label, index
    for index, message in enumerate(value):
        here = f"{label}[{index}]"
        if not isinstance(message, dict):
            raise BadRow("not_an_object", f"{here} is {type_name(message)}, expected an object")
        role = message.get("role")
        if role is None:
            raise BadRow("missing_field", f"{here}.role is missing")
        system_object = _system_object(message.get("content")) if role == "system" else None
        if system_object is not None:
            if answer:
                raise BadRow("role_order", f"{here} is a system message; an answer holds assistant messages only")
            if messages or pending:
                raise BadRow("role_order", f"{here} is a system message; a system message may only come first")
            effort = _effort(system_object, f"{here}.content")
            continue
        content = _text(message.get("content"), f"{here}.content")
        channel = message.get("channel") if role == "assistant" else None
        if channel == "analysis":
            if pending:
                raise BadRow("role_order", f"{here} is a second analysis message in a row; expected the final answer after {pending[1]}")
            pending = (content, here, index)
            continue
        if channel is not None and channel != "final":
            raise BadRow("bad_channel", f"{here}.channel is {channel!r}; Harmony messages are read on {' and '.join(CHANNELS)} only")
        if pending and role != "assistant":
            raise BadRow("empty_assistant", f"{pending[1]} is an analysis message with no final answer after it")
        canonical = {"role": role, "content": content}
        if pending:
            canonical["thinking"] = pending[0]
            here = f"{label}[{pending[2]}..{index}]"
            pending = None
        elif message.get("thinking") is not None:
            canonical["thinking"] = message["thinking"]
        messages.append(canonical)
        where.append(here)
    if pending:
        raise BadRow("empty_assistant", f"{pending[1]} is an analysis message with no final answer after it")
    return messages, where, effort


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
