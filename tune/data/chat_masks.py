"""Assistant-only loss labels from a chat template that has no `{% generation %}` markers.

LLM-jp-4's Harmony template marks nothing, so ``assistant_spans`` derives the trained spans by
rendering (the whole conversation, and each prefix before an assistant turn with the generation
prompt): every assistant message is supervised, consecutive ones included (thinking + answer, a
tool call after analysis), each up to and including its end marker (``<|end|>``, ``<|return|>``,
``<|call|>`` or eos); the generation prompt (``<|start|>assistant``) stays input.
``label_conversation(s)`` / ``tokenize_rendered`` encode the text without an added bos, exactly as
``apply_chat_template`` does, and supervise a token when its characters lie wholly inside a span;
every other label is ``IGNORE_INDEX`` (-100).

Message content is text: only the template writes control tokens. A special-token name inside any
string of the messages (``<|end|>`` in code or in text about the format; any of LLM-jp-4's ids
0-351) is encoded as ordinary pieces, never as its id, and never ends or starts a span.
``assistant_spans`` returns a ``RenderedChat`` whose ``controls`` are None when no string of the
messages holds such a name (the text is then encoded whole, exactly as ``apply_chat_template``
encodes it); otherwise the conversation is rendered again with a private-use marker character
inside each such name, so that the names left whole, and the end markers the spans are found by,
are the template's own; ``controls`` are their places in the real text. ``encode_rendered`` then
encodes each run of text between two of them with names read as text (the tokenizer's
``encode_special_tokens``), and the control tokens as their ids. ``encode_chat`` encodes a prompt
the same way (`tune chat`).

Refuses (``TemplateMaskError``): a conversation that starts with an assistant message, a template
whose prefix renderings cannot be aligned with the whole conversation, an unclosed assistant turn;
and, only when a message holds a special-token name, a template whose rendering the marker does not
pass through unchanged, or a tokenizer that encodes a run of text on its own differently from the
same run inside the conversation, or that makes a name its id even when reading it as text.

How the spans are found, with a worked example: docs/loss-masks.md; names in content:
docs/literal-control-strings.md
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple
from weakref import WeakKeyDictionary

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


class RenderedChat(NamedTuple):
    """A conversation rendered by its chat template: the text, the assistant spans [start, end) in
    it, and ``controls``: None when no string of the messages holds a special-token name (every name
    in ``text`` is then the template's), else the [start, end) of each control token the template
    wrote (the names in between are text)."""

    text: str
    spans: list[tuple[int, int]]
    controls: tuple[tuple[int, int], ...] | None = None


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


def assistant_spans(tokenizer, messages: list[dict], template_kwargs: dict) -> RenderedChat:
    """The rendered conversation, the character spans [start, end) the model must learn to write,
    and where the template wrote control tokens (None when no message holds a special-token name)."""
    names = control_names(tokenizer)
    marker = _literal_marker(names, messages)
    if marker is None:
        return RenderedChat(*_spans(tokenizer, messages, template_kwargs))
    text = render(tokenizer, messages, template_kwargs, add_generation_prompt=False)  # the template's own checks
    marked_text, spans = _spans(tokenizer, _mark(messages, names, marker), template_kwargs)
    marked = _Marked(marked_text, marker, text)
    return RenderedChat(text, [(marked.position(start), marked.position(end)) for start, end in spans],
                        marked.controls(names))


def render_chat(tokenizer, messages: list[dict], template_kwargs: dict, add_generation_prompt: bool = True) -> RenderedChat:
    """``messages`` rendered (with the generation prompt when asked) and where the template wrote
    control tokens, as ``assistant_spans`` finds them; no spans."""
    text = render(tokenizer, messages, template_kwargs, add_generation_prompt)
    names = control_names(tokenizer)
    marker = _literal_marker(names, messages)
    if marker is None:
        return RenderedChat(text, [])
    marked = render(tokenizer, _mark(messages, names, marker), template_kwargs, add_generation_prompt)
    return RenderedChat(text, [], _Marked(marked, marker, text).controls(names))


def encode_chat(tokenizer, messages: list[dict], template_kwargs: dict, add_generation_prompt: bool = True) -> list[int]:
    """Ids of ``messages`` as training encodes them: rendered by the chat template, no bos added,
    special-token names in message content encoded as text."""
    ids, _ = encode_rendered(tokenizer, [render_chat(tokenizer, messages, template_kwargs, add_generation_prompt)])[0]
    return ids.tolist()


def _spans(tokenizer, messages: list[dict], template_kwargs: dict) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and its assistant spans, found by rendering prefixes."""
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


def control_names(tokenizer) -> re.Pattern | None:
    """A regex matching the tokenizer's special-token names (what a name in text turns into an id),
    longest first, as the tokenizer matches them; None when it has none. A one-character name
    cannot be marked and is left out (LLM-jp-4 has none). Kept per tokenizer while its size holds."""
    size = len(tokenizer)
    cached = _CONTROL_NAMES.get(tokenizer)
    if cached is None or cached[0] != size:
        added = tokenizer.added_tokens_decoder.values()
        cached = (size, _names_pattern(tuple(sorted({t.content for t in added if t.special and len(t.content) > 1}))))
        _CONTROL_NAMES[tokenizer] = cached
    return cached[1]


_CONTROL_NAMES: WeakKeyDictionary = WeakKeyDictionary()


@lru_cache(maxsize=16)
def _names_pattern(names: tuple[str, ...]) -> re.Pattern | None:
    if not names:
        return None
    return re.compile("|".join(re.escape(name) for name in sorted(names, key=len, reverse=True)))


# Private-use characters: the first one no string of a conversation holds marks the names in it.
_MARKERS = tuple(chr(0xF0000 + i) for i in range(64))


def _strings(value) -> Iterator[str]:
    """Every string in ``value`` (messages: dict values, list items, nested); dict keys are not content."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def _literal_marker(names: re.Pattern | None, messages: list[dict]) -> str | None:
    """None when no string of ``messages`` holds a special-token name, else a marker character none holds."""
    strings = list(_strings(messages))
    if names is None or not any(names.search(s) for s in strings):
        return None
    joined = "\0".join(strings)
    marker = next((m for m in _MARKERS if m not in joined), None)
    if marker is None:
        raise TemplateMaskError("the messages hold special-token names and every private-use character tune marks "
                                f"them with (U+F0000..U+{0xF0000 + len(_MARKERS) - 1:X}); they cannot be encoded as text")
    return marker


def _mark(value, names: re.Pattern, marker: str):
    """``value`` (messages) with ``marker`` inserted after the first character of every special-token name
    in its strings, so that the rendered text holds no name that came from content."""
    if isinstance(value, str):
        return names.sub(lambda match: match[0][0] + marker + match[0][1:], value)
    if isinstance(value, dict):
        return {key: _mark(item, names, marker) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mark(item, names, marker) for item in value]
    return value


class _Marked:
    """A rendering of marked messages: its positions in the real rendering, and the template's control tokens."""

    def __init__(self, marked: str, marker: str, text: str):
        if marked.replace(marker, "") != text:
            raise TemplateMaskError(
                "the chat template renders the messages differently once the special-token names in them are marked "
                "(it rewrites message content); its own control tokens cannot be told from names in the content"
            )
        self.marked = marked
        self.markers = [match.start() for match in re.finditer(re.escape(marker), marked)]

    def position(self, at: int) -> int:
        """Where position ``at`` of the marked rendering lies in the real one."""
        return at - bisect_left(self.markers, at)

    def controls(self, names: re.Pattern) -> tuple[tuple[int, int], ...]:
        """[start, end) in the real rendering of every name left whole: those the template wrote."""
        return tuple((self.position(m.start()), self.position(m.end())) for m in names.finditer(self.marked))


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


def tokenize_rendered(tokenizer, rendered: list[RenderedChat], last_turn_only: bool = False) -> list[LabelledSample]:
    """Ids and labels for ``assistant_spans`` results (a plain (text, spans) pair is one without
    ``controls``), encoded in one batch by ``encode_rendered``."""
    rendered = [chat if isinstance(chat, RenderedChat) else RenderedChat(*chat) for chat in rendered]
    samples = []
    for chat, (ids, offsets) in zip(rendered, encode_rendered(tokenizer, rendered)):
        inside = _inside_spans(offsets, chat.spans[-1:] if last_turn_only else chat.spans)
        samples.append(LabelledSample(ids.tolist(), np.where(inside, ids, IGNORE_INDEX).tolist(), int(inside.sum())))
    return samples


def encode_rendered(tokenizer, rendered: list[RenderedChat]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ids, offsets) of each rendered chat, no bos added; offsets are each token's [start, end)
    characters in the chat's text (int64 arrays, offsets shaped [tokens, 2]).

    Without ``controls`` the text is encoded whole, as ``apply_chat_template`` encodes it. With
    them, each run of text between two control tokens is encoded on its own with special-token
    names read as text, and each control token is its id. The text after a special token is
    encoded afresh anyway (it gets its own dummy-prefix "▁"), so for text without names the runs
    give exactly the whole text's ids; that is checked on every such chat (the runs encoded with
    names matched must give the whole text's ids), and so is that no run read as text holds a
    special id (a tokenizer.json whose model scores a special piece above ordinary text would
    still make a name its id); a tokenizer that fails either is refused."""
    backend = tokenizer.backend_tokenizer
    out: list = [None] * len(rendered)
    whole = [i for i, chat in enumerate(rendered) if chat.controls is None]
    with _names_matched(backend, True):
        encodings = backend.encode_batch([rendered[i].text for i in whole], add_special_tokens=False)
    for i, encoding in zip(whole, encodings):
        out[i] = (np.asarray(encoding.ids, dtype=np.int64), np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2))
    literal = [i for i, chat in enumerate(rendered) if chat.controls is not None]
    for i, encoded in zip(literal, _encode_runs(backend, [rendered[i] for i in literal])):
        out[i] = encoded
    return out


def _encode_runs(backend, chats: list[RenderedChat]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``encode_rendered`` for chats with ``controls``: the runs between them with names read as text."""
    runs, starts, layouts = [], [], []  # a layout part: a run's index, or a control token (id, start, end)
    for chat in chats:
        layout, position = [], 0
        for start, end in (*chat.controls, (len(chat.text), None)):
            if start > position:
                layout.append(len(runs))
                runs.append(chat.text[position:start])
                starts.append(position)
            if end is not None:
                layout.append((backend.token_to_id(chat.text[start:end]), start, end))
                position = end
        layouts.append(layout)
    with _names_matched(backend, False):
        as_text = backend.encode_batch(runs, add_special_tokens=False)
    with _names_matched(backend, True):
        as_names = backend.encode_batch(runs, add_special_tokens=False)
        wholes = backend.encode_batch([chat.text for chat in chats], add_special_tokens=False)
    specials = np.array([i for i, token in backend.get_added_tokens_decoder().items() if token.special], dtype=np.int64)
    if any(np.isin(encoding.ids, specials).any() for encoding in as_text):
        raise TemplateMaskError("this tokenizer turns a special-token name into its id even when reading it as text "
                                "(its model holds the name as a piece that wins over ordinary text), so names in "
                                "message content cannot be encoded as text with it")
    encoded = []
    for layout, whole in zip(layouts, wholes):
        ids, offsets, check = [], [], []
        for part in layout:
            if isinstance(part, tuple):
                ids.append(np.array([part[0]], dtype=np.int64))
                offsets.append(np.array([part[1:]], dtype=np.int64))
                check.append(part[0])
            else:
                ids.append(np.asarray(as_text[part].ids, dtype=np.int64))
                offsets.append(np.asarray(as_text[part].offsets, dtype=np.int64).reshape(-1, 2) + starts[part])
                check.extend(as_names[part].ids)
        if check != whole.ids:
            raise TemplateMaskError(
                "this tokenizer encodes the text between two control tokens differently on its own than inside the "
                "conversation (its pre-tokenizer depends on the position), so special-token names in message content "
                "cannot be encoded as text with it"
            )
        encoded.append((np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64),
                        np.concatenate(offsets) if offsets else np.zeros((0, 2), dtype=np.int64)))
    return encoded


@contextmanager
def _names_matched(backend, matched: bool):
    """``backend`` with special-token names in text matched to their ids (True) or read as text
    (False: ``encode_special_tokens``, what transformers' ``split_special_tokens`` sets), then as it was."""
    previous = backend.encode_special_tokens
    backend.encode_special_tokens = not matched
    try:
        yield
    finally:
        backend.encode_special_tokens = previous


def _inside_spans(offsets: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """Which tokens are supervised: a token is when it starts inside a span and ends within it
    (``offsets`` are the tokens' [begin, end) characters; spans are in order and disjoint)."""
    begins, ends = offsets[:, 0], offsets[:, 1]
    inside = np.zeros(len(offsets), dtype=bool)
    for start, end in spans:
        inside |= (begins >= start) & (begins < end) & (ends <= end)
    return inside
