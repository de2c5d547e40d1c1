"""LLM-jp-4's Harmony reply format at generation time: which tokens end a reply, and its parts.

After the generation prompt ``<|start|>assistant`` the model writes one or more messages:

    <|channel|>analysis<|message|>THINKING<|end|><|start|>assistant<|channel|>final<|message|>ANSWER<|return|>

- ``<|return|>`` (id 2) ends the reply; ``<|call|>`` (id 13) ends a tool call, which the caller
  must answer before generation continues. Both are the exported ``eos_token_id``.
- ``<|end|>`` (id 11) closes *one message*. After an ``analysis`` (thinking) or ``commentary``
  (preamble) message the model goes on with the next message, so ``<|end|>`` is **not** an eos
  in the exported generation_config.json: a plain ``generate`` would stop after the thinking and
  return an empty answer (OpenAI's gpt-oss, the origin of the format, leaves it out too).
  tune's own chat stops on ``<|end|>`` only when it closes a ``final`` message (or a message with
  no channel): a model tuned on multi-turn data has learned ``<|end|>`` after non-last answers.

Token ids are read from the tokenizer by name, never assumed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tune.harmony_tokens import CHANNEL, END_MARKERS, END_OF_MESSAGE, MESSAGE, REPLY_ENDS, START

_CHANNEL = re.compile(r"<\|channel\|>\s*(\w+)")
_RECIPIENT = re.compile(r"to=([\w.]+)")


def token_id(tokenizer, token: str) -> int:
    """The id of special token ``token``; ValueError when the tokenizer lacks it."""
    ids = tokenizer.convert_tokens_to_ids([token])
    if not ids or ids[0] is None or ids[0] == tokenizer.unk_token_id:
        raise ValueError(f"the tokenizer has no {token} token: not an LLM-jp-4 (Harmony) tokenizer")
    return ids[0]


def eos_token_ids(tokenizer) -> list[int]:
    """Ids that end a reply: ``<|return|>`` and ``<|call|>`` (2 and 13 for LLM-jp-4)."""
    return [token_id(tokenizer, token) for token in REPLY_ENDS]


def has_harmony_tokens(tokenizer) -> bool:
    """True when the tokenizer has every Harmony marker this module relies on."""
    try:
        for token in (*END_MARKERS, START, CHANNEL, MESSAGE):
            token_id(tokenizer, token)
    except ValueError:
        return False
    return True


def make_stopping_criteria(tokenizer, prompt_length: int):
    """A transformers StoppingCriteria implementing the rule in the module docstring for the
    tokens generated after the first ``prompt_length`` ones."""
    import torch
    from transformers import StoppingCriteria

    eos = set(eos_token_ids(tokenizer))
    end, start, message = (token_id(tokenizer, t) for t in (END_OF_MESSAGE, START, MESSAGE))

    class HarmonyStop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            done = [self._row_done(row[prompt_length:].tolist()) for row in input_ids]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

        @staticmethod
        def _row_done(generated: list[int]) -> bool:
            if not generated:
                return False
            if generated[-1] in eos:
                return True
            if generated[-1] != end:
                return False
            begin = max((i + 1 for i, t in enumerate(generated[:-1]) if t == start), default=0)
            header_end = next((i for i in range(begin, len(generated)) if generated[i] == message), begin)
            channel = message_channel(tokenizer.decode(generated[begin:header_end], skip_special_tokens=False))
            return channel not in ("analysis", "commentary")

    return HarmonyStop()


def message_channel(header: str) -> str | None:
    """The channel a Harmony message header names (``analysis``, ``final``, ...), or None."""
    found = _CHANNEL.search(header)
    return found.group(1) if found else None


@dataclass(frozen=True)
class ParsedReply:
    """A generated reply split into what the user reads and what the model thought."""

    final: str
    thinking: str
    tool_calls: tuple[str, ...] = ()


def parse_reply(text: str) -> ParsedReply:
    """Split the text generated after ``<|start|>assistant`` (decoded with special tokens) into
    its final answer, its analysis (thinking) and its tool calls. Text with no message structure
    at all (a model that never learned the format) is returned whole, special tokens removed.
    A control-token name the model wrote as text cannot be told apart here: ``parse_reply_ids``
    reads the ids instead."""
    messages = []
    for segment in text.split(START):
        header, found, body = segment.partition(MESSAGE)
        if not found:
            continue
        for marker in END_MARKERS:
            body = body.split(marker, 1)[0]
        messages.append((header, body))
    return _classify(messages, lambda: re.sub(r"<\|[a-z_]+\|>", "", text).strip())


def parse_reply_ids(tokenizer, ids: list[int]) -> ParsedReply:
    """``parse_reply`` on the generated ids: the message structure comes from the control ids, and
    each header and body is decoded on its own, so a control-token name the model wrote as text
    (docs/literal-control-strings.md) stays in the answer instead of cutting it."""
    start, message = token_id(tokenizer, START), token_id(tokenizer, MESSAGE)
    ends = {token_id(tokenizer, marker) for marker in END_MARKERS}
    messages, header, body, where = [], [], [], None  # where: None (between messages), "header" or "body"
    for token in [start, *ids] if ids and ids[0] != start else ids:
        if token == start:
            if where is not None:
                messages.append((header, body))
            header, body, where = [], [], "header"
        elif token == message and where == "header":
            where = "body"
        elif token in ends and where is not None:
            messages.append((header, body))
            where = None
        elif where == "header":
            header.append(token)
        elif where == "body":
            body.append(token)
    if where is not None and where == "body":
        messages.append((header, body))
    decoded = [(tokenizer.decode(h, skip_special_tokens=False), tokenizer.decode(b, skip_special_tokens=False))
               for h, b in messages]
    return _classify(decoded, lambda: tokenizer.decode(ids, skip_special_tokens=True).strip())


def _classify(messages: list[tuple[str, str]], whole) -> ParsedReply:
    """Final answers, thinking and tool calls of (header, body) messages; ``whole()`` when there are none."""
    finals, thoughts, calls = [], [], []
    for header, body in messages:
        channel = message_channel(header)
        recipient = _RECIPIENT.search(header)
        if recipient and recipient.group(1) != "assistant":
            calls.append(f"{recipient.group(1)} {body.strip()}")
        elif channel == "analysis":
            thoughts.append(body.strip())
        elif channel in (None, "final", "commentary"):
            finals.append(body.strip())
    if not (finals or thoughts or calls):
        return ParsedReply(whole(), "")
    return ParsedReply("\n".join(finals), "\n".join(thoughts), tuple(calls))
