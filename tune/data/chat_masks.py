"""Assistant-only loss labels from a chat template that has no `{% generation %}` markers.

LLM-jp-4's Harmony template marks nothing, so ``assistant_spans`` derives the trained spans by
rendering (the whole conversation, and each prefix before an assistant turn with the generation
prompt): every assistant message is supervised, consecutive ones included (thinking + answer, a
tool call after analysis), each up to and including its end marker (``<|end|>``, ``<|return|>``,
``<|call|>`` or eos); the generation prompt (``<|start|>assistant``) stays input.
``label_conversation(s)`` / ``tokenize_rendered`` encode the text without an added bos, exactly as
``apply_chat_template`` does, and supervise a token when its characters lie wholly inside a span;
every other label is ``IGNORE_INDEX`` (-100).

Refuses (``TemplateMaskError``): a conversation that starts with an assistant message, a template
whose prefix renderings cannot be aligned with the whole conversation, an unclosed assistant turn.

How the spans are found, with a worked example: docs/loss-masks.md
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tune.harmony_tokens import END_MARKERS

IGNORE_INDEX = -100


class TemplateMaskError(ValueError):
    """The template renders prefixes that are not prefixes of the full conversation."""


@dataclass(frozen=True)
class LabelledSample:
    """Token ids and their labels (IGNORE_INDEX where the token carries no loss)."""

    input_ids: list[int]
    labels: list[int]
    supervised_tokens: int = field(default=-1, compare=False)  # labels that are not IGNORE_INDEX; counted when not given

    def __post_init__(self) -> None:
        if self.supervised_tokens < 0:
            object.__setattr__(self, "supervised_tokens", sum(label != IGNORE_INDEX for label in self.labels))


def render(tokenizer, messages: list[dict], template_kwargs: dict, add_generation_prompt: bool) -> str:
    """``messages`` rendered as text by the tokenizer's own chat template."""
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt, **template_kwargs
    )


def generation_prompt(tokenizer, template_kwargs: dict) -> str:
    """The text ``add_generation_prompt`` appends (``<|start|>assistant`` for Harmony), found once
    per template and variables by rendering a one-message conversation both ways."""
    template = template_kwargs.get("chat_template") or tokenizer.chat_template
    key = (template, tuple(sorted((k, str(v)) for k, v in template_kwargs.items() if k != "chat_template")))
    if key not in _GENERATION_PROMPTS:
        probe = [{"role": "user", "content": "x"}]
        bare = render(tokenizer, probe, template_kwargs, add_generation_prompt=False)
        prompted = render(tokenizer, probe, template_kwargs, add_generation_prompt=True)
        _GENERATION_PROMPTS[key] = prompted[len(bare):] if prompted.startswith(bare) else ""
    return _GENERATION_PROMPTS[key]


_GENERATION_PROMPTS: dict = {}


def assistant_spans(tokenizer, messages: list[dict], template_kwargs: dict) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans [start, end) the model must learn to write."""
    full = render(tokenizer, messages, template_kwargs, add_generation_prompt=False)
    end_markers = [m for m in (*END_MARKERS, tokenizer.eos_token) if m]
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant" or (k > 0 and messages[k - 1]["role"] == "assistant"):
            continue
        if k == 0:
            raise TemplateMaskError("a conversation cannot start with an assistant message")
        prefix = render(tokenizer, messages[:k], template_kwargs, add_generation_prompt=True)
        prompt = generation_prompt(tokenizer, template_kwargs)
        if not prompt or not prefix.endswith(prompt):  # a template whose prompt depends on the history
            context = render(tokenizer, messages[:k], template_kwargs, add_generation_prompt=False)
            prompt = prefix[len(context):] if prefix.startswith(context) else ""
        start = len(prefix) if full.startswith(prefix) else _aligned_end(prefix, full, prompt)
        if start is None:
            raise TemplateMaskError(
                f"the chat template renders messages[:{k}] so differently from the start of the whole "
                "conversation that assistant turns cannot be located by rendering prefixes"
            )
        spans.append((start, _turn_end(full, start, end_markers, prompt)))
    return full, spans


def _aligned_end(prefix: str, full: str, generation_prompt: str) -> int | None:
    """Where the end of ``prefix`` falls in ``full`` when the template rendered part of the history
    only in the shorter conversation (Harmony keeps a tool call's thinking until a final answer
    follows, then drops it). The two texts are aligned; the end of ``prefix`` must land in ``full``
    right after a copy of the generation prompt, else None."""
    from difflib import SequenceMatcher

    blocks = SequenceMatcher(None, prefix, full, autojunk=False).get_matching_blocks()
    for a, b, size in blocks:
        if size and a + size == len(prefix) and size >= len(generation_prompt) > 0:
            return b + size
    return None


def _turn_end(full: str, start: int, end_markers: list[str], generation_prompt: str) -> int:
    position = start
    while True:
        hits = [(full.find(m, position), m) for m in end_markers]
        hits = [(at, m) for at, m in hits if at >= 0]
        if not hits:
            raise TemplateMaskError(f"an assistant turn starting at character {start} is never closed by an end marker")
        at, marker = min(hits)
        end = at + len(marker)
        if not generation_prompt or not full.startswith(generation_prompt, end):
            return end
        position = end + len(generation_prompt)


def label_conversation(
    tokenizer, messages: list[dict], template_kwargs: dict, last_turn_only: bool = False
) -> LabelledSample:
    """Token ids of the rendered conversation and labels that supervise assistant spans only
    (only the last span when ``last_turn_only``)."""
    return label_conversations(tokenizer, [(messages, template_kwargs)], last_turn_only)[0]


def label_conversations(tokenizer, items: list[tuple[list[dict], dict]], last_turn_only: bool = False) -> list[LabelledSample]:
    """``label_conversation`` for many (messages, template_kwargs) pairs, tokenized in one batch."""
    rendered = [assistant_spans(tokenizer, messages, kwargs) for messages, kwargs in items]
    return tokenize_rendered(tokenizer, rendered, last_turn_only)


def tokenize_rendered(tokenizer, rendered: list[tuple[str, list[tuple[int, int]]]], last_turn_only: bool = False) -> list[LabelledSample]:
    """Ids and labels for (text, spans) pairs from ``assistant_spans``, encoded in one batch (no bos
    added, as ``apply_chat_template`` encodes)."""
    encodings = tokenizer.backend_tokenizer.encode_batch([full for full, _ in rendered], add_special_tokens=False)
    samples = []
    for (_, spans), encoding in zip(rendered, encodings):
        spans = spans[-1:] if last_turn_only else spans
        ids = np.asarray(encoding.ids, dtype=np.int64)
        inside = _inside_spans(np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2), spans)
        samples.append(LabelledSample(ids.tolist(), np.where(inside, ids, IGNORE_INDEX).tolist(), int(inside.sum())))
    return samples


def _inside_spans(offsets: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """Which tokens are supervised: a token is when it starts inside a span and ends within it
    (``offsets`` are the tokens' [begin, end) characters; spans are in order and disjoint)."""
    begins, ends = offsets[:, 0], offsets[:, 1]
    inside = np.zeros(len(offsets), dtype=bool)
    for start, end in spans:
        inside |= (begins >= start) & (begins < end) & (ends <= end)
    return inside
