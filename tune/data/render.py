"""Render a conversation record with the recipe's template and options into ids + labels.

`data.template: chat` uses the tokenizer's own chat template (never a Python imitation of it);
`instruct_ja` uses tune's `templates/instruct_ja.jinja`. Both go through the tokenizer's
`apply_chat_template`, and the labels come from tune.data.chat_masks (prefix rendering).
The date and reasoning effort the recipe pins are passed as template variables; a row that
carries its own reasoning effort (LLM-jp-4's SFT rows do) keeps it. Special-token names inside
message content are encoded as text, never as control ids (tune.data.chat_masks).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from tune.config.schema import DataSection
from tune.data.chat_masks import LabelledSample, RenderedChat, assistant_spans, label_conversation, tokenize_rendered
from tune.data.records import Conversation, Preference

TEMPLATES_DIR = Path(__file__).parent / "templates"


@lru_cache(maxsize=None)
def template_text(name: str) -> str | None:
    """The jinja text of a tune template, or None for `chat` (the tokenizer's own)."""
    return None if name == "chat" else (TEMPLATES_DIR / f"{name}.jinja").read_text(encoding="utf-8")


def template_kwargs(data: DataSection, record: Conversation | Preference | None = None) -> dict:
    """Variables for the template: pinned date, reasoning effort (the row's own first), template text."""
    kwargs = {
        "conversation_start_date": data.conversation_start_date,
        "reasoning_effort": (record.reasoning_effort if record else None) or data.reasoning_effort,
    }
    text = template_text(data.template)
    if text is not None:
        kwargs["chat_template"] = text
    return kwargs


def render_record(tokenizer, record: Conversation, data: DataSection) -> LabelledSample:
    """Ids and labels of ``record``; raises TemplateMaskError or the template's own error."""
    return label_conversation(
        tokenizer,
        [dict(m) for m in record.messages],
        template_kwargs(data, record),
        last_turn_only=data.train_on == "last_assistant",
    )


def render_text(tokenizer, record: Conversation, data: DataSection) -> RenderedChat:
    """The rendered text of ``record``, its assistant spans and where the template wrote control
    tokens (a ``RenderedChat``, see tune.data.chat_masks)."""
    return assistant_spans(tokenizer, [dict(m) for m in record.messages], template_kwargs(data, record))


def tokenize_texts(tokenizer, rendered: list, data: DataSection) -> list[LabelledSample]:
    """Ids and labels for many ``render_text`` results, tokenized in one batch."""
    return tokenize_rendered(tokenizer, rendered, last_turn_only=data.train_on == "last_assistant")
