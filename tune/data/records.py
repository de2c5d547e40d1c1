"""Canonical records: what every source format is converted into, and the rules they must obey.

A converter (tune.data.converters) turns one source row into one record:

* ``Conversation``: messages for supervised fine-tuning, plus the reasoning effort when the row
  itself states one.
* ``Preference``: a prompt and two answers, the preferred (``chosen``) and the other (``rejected``),
  plus the reasoning effort when the row itself states one (a Harmony prompt's system object).
* ``Text``: plain text for continued pre-training.

A message is a dict ``{"role", "content"}`` with, on assistant messages only, an optional
``thinking`` string and optional ``tool_calls`` (``[{"name": str, "arguments": dict | str}]``).
These are exactly the fields tune's Harmony chat template renders.

A row that cannot become a valid record raises ``BadRow`` with a short ``reason`` key (one of
``BAD_ROW_REASONS``) and a ``detail`` sentence naming the offending field. The conversation rules
live in ``check_conversation`` alone, so every converter refuses the same things for the same
reasons.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

ROLES = ("system", "developer", "user", "assistant", "tool")
REASONING_EFFORTS = ("low", "medium", "high")

BAD_ROW_REASONS: dict[str, str] = {
    "invalid_json": "a line of a .jsonl file (or a JSON-encoded field) is not valid JSON",
    "not_utf8": "a .jsonl line, a .json element or a parquet string holds bytes that are not UTF-8 text",
    "number_too_long": "an integer with more digits than Python reads (sys.get_int_max_str_digits(), 4300 by default)",
    "too_deep": "lists and objects nested deeper than tune reads (tune.data.json_text.MAX_NESTING levels)",
    "lone_surrogate": "a string holding a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape), which is not text",
    "not_an_object": "the row, or one of its messages, is not a JSON object",
    "missing_field": "a required field is absent or null",
    "wrong_type": "a structural field has the wrong type (e.g. `messages` is not a list)",
    "non_string_content": "a text field (content, thinking, value, instruction, ...) is not a string",
    "unknown_role": "a message role (or sharegpt `from`) outside the known set",
    "unknown_shape": "a row in none of the shapes its converter reads (e.g. sharegpt turns mixing from/value and role/content)",
    "role_order": "an impossible order of messages (e.g. system not first, assistant before any user)",
    "empty_conversation": "the message list is empty",
    "no_assistant": "no assistant message: nothing to train on",
    "empty_user": "a user message (or instruction) is empty",
    "empty_assistant": "an assistant message has neither content nor a tool call",
    "thinking_not_assistant": "a `thinking` field on a message that is not from the assistant",
    "tool_calls_not_assistant": "`tool_calls` on a message that is not from the assistant",
    "bad_tool_call": "a tool call without a string `name`, or with `arguments` neither object nor string",
    "bad_content_block": "a content block that is not a text block (Harmony messages: llmjp4_sft, preference)",
    "bad_channel": "an assistant channel other than analysis / final (Harmony messages: llmjp4_sft, preference)",
    "bad_reasoning_effort": "a reasoning effort other than low / medium / high",
    "identical_pair": "chosen and rejected are the same answer",
    "empty_text": "a text record with no non-blank character",
}


class BadRow(Exception):
    """A row that cannot become a record. ``reason`` is a key of BAD_ROW_REASONS; ``detail`` says
    which field is wrong and how, in words a person can act on."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in BAD_ROW_REASONS:
            raise ValueError(f"unknown BadRow reason {reason!r}; known: {', '.join(BAD_ROW_REASONS)}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Conversation:
    messages: tuple[dict, ...]
    reasoning_effort: str | None = None


@dataclass(frozen=True)
class Preference:
    prompt: tuple[dict, ...]
    chosen: tuple[dict, ...]
    rejected: tuple[dict, ...]
    reasoning_effort: str | None = None


@dataclass(frozen=True)
class Text:
    text: str


Record = Conversation | Preference | Text

RECORD_KINDS: dict[type, str] = {Conversation: "sft", Preference: "preference", Text: "text"}


def record_kind(record: Record) -> str:
    """``"sft"``, ``"preference"`` or ``"text"``: the dataset kind this record belongs to."""
    return RECORD_KINDS[type(record)]


def type_name(value) -> str:
    """The JSON name of ``value``'s type, for error details ("a list", "null", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def check_conversation(messages: Sequence, where: Sequence[str] | None = None) -> None:
    """Return quietly when ``messages`` is a trainable conversation; raise BadRow otherwise.

    Rules: a non-empty list of objects with a known ``role`` and string ``content``;
    ``thinking`` (string) and ``tool_calls`` only on assistant messages; a system/developer
    message only first; then a user message first; a tool message only right after an assistant
    tool call or another tool message; every user message non-blank; every assistant message
    non-blank content or a tool call; at least one assistant message, and the conversation ends
    with one.

    ``where`` optionally names each message as the source row spells it (``conversations[3]``),
    so the detail points at the field the user wrote; by default ``messages[i]``.
    """
    if not isinstance(messages, (list, tuple)):
        raise BadRow("wrong_type", f"the messages are {type_name(messages)}, expected a list")
    if not messages:
        raise BadRow("empty_conversation", "the conversation has no messages")
    labels = list(where) if where is not None else [f"messages[{i}]" for i in range(len(messages))]
    for index, message in enumerate(messages):
        _check_message(message, labels[index])
    _check_order(messages, labels)


def _check_message(message, label: str) -> None:
    if not isinstance(message, dict):
        raise BadRow("not_an_object", f"{label} is {type_name(message)}, expected an object")
    role = message.get("role")
    if role is None:
        raise BadRow("missing_field", f"{label}.role is missing")
    if role not in ROLES:
        raise BadRow("unknown_role", f"{label}.role is {role!r}; expected one of {', '.join(ROLES)}")
    if "content" not in message or message["content"] is None:
        raise BadRow("missing_field", f"{label}.content is missing")
    if not isinstance(message["content"], str):
        raise BadRow("non_string_content", f"{label}.content is {type_name(message['content'])}, expected a string")
    if message.get("thinking") is not None:
        if role != "assistant":
            raise BadRow("thinking_not_assistant", f"{label} is a {role} message with a `thinking` field; only assistant messages think")
        if not isinstance(message["thinking"], str):
            raise BadRow("non_string_content", f"{label}.thinking is {type_name(message['thinking'])}, expected a string")
    if message.get("tool_calls") is not None:
        if role != "assistant":
            raise BadRow("tool_calls_not_assistant", f"{label} is a {role} message with `tool_calls`; only assistant messages call tools")
        _check_tool_calls(message["tool_calls"], f"{label}.tool_calls")


def _check_tool_calls(calls, label: str) -> None:
    if not isinstance(calls, (list, tuple)) or not calls:
        raise BadRow("bad_tool_call", f"{label} is {type_name(calls) if calls else 'empty'}, expected a non-empty list")
    for index, call in enumerate(calls):
        where = f"{label}[{index}]"
        if not isinstance(call, dict):
            raise BadRow("bad_tool_call", f"{where} is {type_name(call)}, expected an object")
        if not isinstance(call.get("name"), str) or not call["name"].strip():
            raise BadRow("bad_tool_call", f"{where}.name is {type_name(call.get('name'))}, expected a non-empty string")
        if not isinstance(call.get("arguments"), (dict, str)):
            raise BadRow("bad_tool_call", f"{where}.arguments is {type_name(call.get('arguments'))}, expected an object or a string")


def _check_order(messages: Sequence[dict], labels: list[str]) -> None:
    for index, message in enumerate(messages):
        role, label = message["role"], labels[index]
        if role in ("system", "developer") and index != 0:
            raise BadRow("role_order", f"{label} is a {role} message; a {role} message may only come first")
        previous = messages[index - 1] if index else None
        if role == "tool" and not (previous and (previous.get("tool_calls") or previous["role"] == "tool")):
            raise BadRow("role_order", f"{label} is a tool message that does not follow an assistant tool call")
        if role == "user" and not message["content"].strip():
            raise BadRow("empty_user", f"{label}.content is blank")
        if role == "assistant" and not message["content"].strip() and not message.get("tool_calls"):
            raise BadRow("empty_assistant", f"{label}.content is blank and the message makes no tool call")
    chat_start = 1 if messages[0]["role"] in ("system", "developer") else 0
    if chat_start == len(messages):
        raise BadRow("no_assistant", "the conversation holds only a system/developer message")
    if messages[chat_start]["role"] != "user":
        label = labels[chat_start]
        raise BadRow("role_order", f"{label} is a {messages[chat_start]['role']} message; the conversation must start with a user message")
    if not any(m["role"] == "assistant" for m in messages):
        raise BadRow("no_assistant", "no assistant message: nothing to train on")
    if messages[-1]["role"] != "assistant":
        raise BadRow("role_order", f"{labels[-1]} is a {messages[-1]['role']} message; the conversation must end with an assistant message")


def check_preference(prompt: Sequence[dict], chosen: Sequence[dict], rejected: Sequence[dict],
                     where: dict[str, Sequence[str]] | None = None) -> None:
    """Return quietly when the three parts make a valid preference pair; raise BadRow otherwise.

    ``prompt`` follows the conversation rules and ends with a user message; ``chosen`` and
    ``rejected`` are one or more assistant messages each, so that prompt + answer is a valid
    conversation (checked by ``check_conversation``); the two answers differ. ``where`` maps
    ``"prompt"``, ``"chosen"``, ``"rejected"`` to per-message source labels.
    """
    labels = {part: list((where or {}).get(part) or [f"{part}[{i}]" for i in range(len(msgs))])
              for part, msgs in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected))}
    if not prompt:
        raise BadRow("empty_conversation", "the prompt has no messages")
    for part, answer in (("chosen", chosen), ("rejected", rejected)):
        if not answer:
            raise BadRow("missing_field", f"{part} has no messages")
        for index, message in enumerate(answer):
            _check_message(message, labels[part][index])
            if message["role"] != "assistant":
                raise BadRow("role_order", f"{labels[part][index]} is a {message['role']} message; {part} holds assistant messages only")
        check_conversation(list(prompt) + list(answer), labels["prompt"] + labels[part])
    if prompt[-1]["role"] != "user":
        raise BadRow("role_order", f"{labels['prompt'][-1]} is a {prompt[-1]['role']} message; the prompt must end with a user message")
    if _canonical(list(chosen)) == _canonical(list(rejected)):
        raise BadRow("identical_pair", "chosen and rejected are identical; the pair teaches nothing")


def check_text(text) -> None:
    """Return quietly when ``text`` is a non-blank string; raise BadRow otherwise."""
    if text is None:
        raise BadRow("missing_field", "text is missing")
    if not isinstance(text, str):
        raise BadRow("non_string_content", f"text is {type_name(text)}, expected a string")
    if not text.strip():
        raise BadRow("empty_text", "text is blank")


def _canonical(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _body(record: Record) -> dict:
    if isinstance(record, Conversation):
        return {"kind": "sft", "messages": list(record.messages), "reasoning_effort": record.reasoning_effort}
    if isinstance(record, Preference):
        return {"kind": "preference", "prompt": list(record.prompt), "chosen": list(record.chosen),
                "rejected": list(record.rejected), "reasoning_effort": record.reasoning_effort}
    if isinstance(record, Text):
        return {"kind": "text", "text": record.text}
    raise TypeError(f"not a record: {type(record).__name__}")


def record_key(record: Record) -> str:
    """A stable sha256 hex digest of the record's content, for exact-duplicate removal.

    Two records get the same key exactly when they have the same kind and the same canonical
    JSON (keys sorted, no whitespace); the key does not depend on Python's hash seed or on dict
    insertion order.
    """
    return hashlib.sha256(_canonical(_body(record)).encode("utf-8")).hexdigest()


def record_digest(record: Record) -> bytes:
    """The first 16 bytes of ``record_key`` (as bytes): what the data pipeline deduplicates by."""
    return hashlib.sha256(_canonical(_body(record)).encode("utf-8")).digest()[:16]


def record_json(record: Record) -> str:
    """The record as one line of JSON, dict keys in their own order (a tool call's arguments render
    in the order they were written); ``record_from_json`` gives the record back, equal to it."""
    return json.dumps(_body(record), ensure_ascii=False, separators=(",", ":"))


def record_from_json(text: str) -> Record:
    """The record ``record_json`` wrote."""
    body = json.loads(text)
    kind = body["kind"]
    if kind == "sft":
        return Conversation(tuple(body["messages"]), body["reasoning_effort"])
    if kind == "preference":
        return Preference(tuple(body["prompt"]), tuple(body["chosen"]), tuple(body["rejected"]), body["reasoning_effort"])
    return Text(body["text"])
