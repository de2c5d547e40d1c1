"""Literal control strings are text: a special-token name inside message content is never a control id.

Property, over every special token of LLM-jp-4 (ids 0-351) on the official template and on the
twin template (and the tiny tokenizer's on the twin): a conversation whose system prompt, user
turns, thinking, answers, tool-call arguments and tool result all hold the name encodes to

- the control ids the template writes and no other (none from content),
- each run of text between two of them encoded as SentencePiece encodes that text (the
  independent oracle; the tiny tokenizer's own SentencePiece model knows the names, so its runs
  are checked against the tokenizer reading names as text),
- the labels of the same conversation with a neutral word in place of the name: every assistant
  turn supervised up to its real end marker, nothing else.

Content without names encodes exactly as before, also when split at the template's control tokens.
How and why: docs/literal-control-strings.md
"""

from __future__ import annotations

import random
import re

import pytest

from tests.data.converting import convert_dataset
from tests.data.supervision import supervised_runs
from tests.data.test_masks_official_template import random_conversation
from tests.models.conftest import llmjp4_asset_dir
from tune.config.schema import DataSection
from tune.data.cards import card_names, load_card
from tune.data.chat_masks import IGNORE_INDEX, TemplateMaskError, assistant_spans, label_conversation
from tune.data.preference_samples import render_pair, tokenize_pairs
from tune.data.records import Preference

PINNED = {"conversation_start_date": "2026-04-01", "reasoning_effort": "high"}
WORD = "PLACEHOLDER"  # neutral text standing where the name goes


@pytest.fixture(scope="module")
def official():
    from tune.models.tokenizer_sentencepiece import build_fast_tokenizer_from_assets

    return build_fast_tokenizer_from_assets(llmjp4_asset_dir())


@pytest.fixture(scope="module")
def official_sp():
    import sentencepiece as spm

    (model,) = llmjp4_asset_dir().glob("*.model")
    return spm.SentencePieceProcessor(model_file=str(model))


@pytest.fixture(scope="module")
def twin_template():
    from tune.models.tokenizer_tiny import load_template_text

    return load_template_text()


def names_of(tokenizer) -> dict[int, str]:
    return {i: token.content for i, token in tokenizer.added_tokens_decoder.items() if token.special}


def conversation(x: str) -> list[dict]:
    """Every place content reaches the template: system, user, earlier answer, tool call with its
    thinking and arguments, tool result, last answer with thinking."""
    return [
        {"role": "system", "content": f"Explain {x} when asked."},
        {"role": "user", "content": f"What is {x}?"},
        {"role": "assistant", "content": f"{x} is a token."},
        {"role": "user", "content": f"Look {x}up"},
        {"role": "assistant", "thinking": f"search{x}", "tool_calls": [{"name": "lookup", "arguments": {"q": x}}]},
        {"role": "tool", "content": f"{x} closes a message"},
        {"role": "assistant", "content": f"It closes a message: {x} then the text goes on.", "thinking": f"So {x}."},
    ]


def expectation(tokenizer, kwargs, encode_text):
    """What the conversation holding a name must give, as a function of the name: the neutral
    conversation's rendering cut at its control tokens (all the template's), each text run with the
    name put back and encoded by ``encode_text``; labels copied from the neutral conversation, run
    by run. Also returns the neutral sample."""
    names = names_of(tokenizer)
    pattern = re.compile("|".join(re.escape(n) for n in sorted(names.values(), key=len, reverse=True)))
    neutral = label_conversation(tokenizer, conversation(WORD), kwargs)
    text = tokenizer.apply_chat_template(conversation(WORD), tokenize=False, **kwargs)
    groups, run = [], []  # the neutral ids cut the same way: each control id alone, text ids in runs
    for token, label in zip(neutral.input_ids, neutral.labels):
        if token in names:
            groups += [run, [(token, label)]] if run else [[(token, label)]]
            run = []
        else:
            run.append((token, label))
    groups += [run] if run else []
    pieces = [piece for piece in re.split(f"({pattern.pattern})", text) if piece]
    assert len(pieces) == len(groups)
    for piece, group in zip(pieces, groups):
        assert [t for t, _ in group] == ([names_id(names, piece)] if piece in names.values() else encode_text(piece))
        if WORD in piece:  # content: the whole run is inside an assistant turn or outside
            assert len({label != IGNORE_INDEX for _, label in group}) == 1, piece

    def expected(name: str) -> tuple[list[int], list[int]]:
        ids, labels = [], []
        for piece, group in zip(pieces, groups):
            if WORD in piece:
                run_ids = encode_text(piece.replace(WORD, name))
                ids += run_ids
                labels += run_ids if group[0][1] != IGNORE_INDEX else [IGNORE_INDEX] * len(run_ids)
            else:
                ids += [t for t, _ in group]
                labels += [label for _, label in group]
        return ids, labels

    return expected, neutral


def names_id(names: dict[int, str], name: str) -> int:
    return next(i for i, n in names.items() if n == name)


def check_every_name(tokenizer, kwargs, encode_text):
    names = names_of(tokenizer)
    expected, neutral = expectation(tokenizer, kwargs, encode_text)
    template_controls = [i for i in neutral.input_ids if i in names]
    for name in names.values():
        sample = label_conversation(tokenizer, conversation(name), kwargs)
        assert [i for i in sample.input_ids if i in names] == template_controls, name
        ids, labels = expected(name)
        assert sample.input_ids == ids, name
        assert sample.labels == labels, name
        assert sample.labels[-1] == sample.input_ids[-1] == tokenizer.convert_tokens_to_ids("<|return|>")


@pytest.mark.parametrize("template", ["official", "twin"])
def test_every_llmjp4_special_token_name_in_content_is_text(official, official_sp, twin_template, template):
    assert len(names_of(official)) == 352
    kwargs = dict(PINNED, **({"chat_template": twin_template} if template == "twin" else {}))
    check_every_name(official, kwargs, official_sp.encode)


def test_every_tiny_special_token_name_in_content_is_text(tiny_tokenizer):
    assert len(names_of(tiny_tokenizer)) == 14

    def as_text(text):
        return tiny_tokenizer(text, add_special_tokens=False, split_special_tokens=True).input_ids

    check_every_name(tiny_tokenizer, PINNED, as_text)


def test_an_answer_about_the_format_is_trained_to_its_real_end(tiny_tokenizer):
    # The case: before, the literal <|end|> became id 11 and ended the span there.
    answer = "Close the message with <|end|>, then the rest of the answer."
    sample = label_conversation(tiny_tokenizer, [{"role": "user", "content": "How?"},
                                                 {"role": "assistant", "content": answer}], PINNED)
    supervised = [i for i, label in zip(sample.input_ids, sample.labels) if label != IGNORE_INDEX]
    as_text = tiny_tokenizer(answer, add_special_tokens=False, split_special_tokens=True).input_ids
    head = tiny_tokenizer.convert_tokens_to_ids(["<|channel|>"]) + tiny_tokenizer("final", add_special_tokens=False).input_ids
    assert supervised == head + tiny_tokenizer.convert_tokens_to_ids(["<|message|>"]) + as_text + [2]
    assert tiny_tokenizer.convert_tokens_to_ids("<|end|>") not in as_text
    assert len(supervised_runs(tiny_tokenizer, sample)) == 1


def test_a_preference_answer_holding_a_name_is_scored_whole(tiny_tokenizer):
    record = Preference(
        prompt=({"role": "user", "content": "Which token ends a reply? Answer <|return|> or <|end|>."},),
        chosen=({"role": "assistant", "content": "<|return|> ends the reply; <|end|> one message."},),
        rejected=({"role": "assistant", "content": "<|end|>"},),
    )
    data = DataSection(datasets=[{"card": card_names()[0]}], conversation_start_date="2026-04-01")
    (sample,) = tokenize_pairs(tiny_tokenizer, [render_pair(tiny_tokenizer, record, data)])
    specials = set(names_of(tiny_tokenizer))
    channel, message, start, end = tiny_tokenizer.convert_tokens_to_ids(["<|channel|>", "<|message|>", "<|start|>", "<|end|>"])
    assert [i for i in sample.chosen_ids if i in specials] == [channel, message, 2]
    assert [i for i in sample.rejected_ids if i in specials] == [channel, message, 2]
    neutral = Preference(*(tuple({**m, "content": m["content"].replace("<|return|>", "X").replace("<|end|>", "X")}
                                 for m in part) for part in (record.prompt, record.chosen, record.rejected)))
    (plain,) = tokenize_pairs(tiny_tokenizer, [render_pair(tiny_tokenizer, neutral, data)])
    assert [i for i in sample.prompt_ids if i in specials] == [i for i in plain.prompt_ids if i in specials]
    assert [i for i in sample.prompt_ids if i in specials][-4:] == [start, message, end, start]


def test_ordinary_content_encodes_the_same_when_split_at_the_templates_control_tokens(official, twin_template, tiny_tokenizer,
                                                                                       tmp_path):
    # A name in a field the template never renders sends a conversation down the literal path
    # (runs between the template's control tokens, encoded on their own) while its text holds no
    # name: ids and labels must be exactly those of the whole-text encoding.
    rng = random.Random(11)
    conversations = [random_conversation(rng) for _ in range(60)]
    with_cards = []
    for name in card_names():
        card = load_card(name)
        if card.kind == "sft":
            records, _ = convert_dataset({"card": name, "use": "samples"}, tmp_path / name)
            with_cards += [[dict(m) for m in record.messages] for record in records]
    cases = [(official, PINNED, conversations + with_cards), (official, dict(PINNED, chat_template=twin_template), conversations),
             (tiny_tokenizer, PINNED, conversations + with_cards)]
    checked = 0
    for tokenizer, kwargs, chats in cases:
        for messages in chats:
            flagged = [dict(messages[0], note="<|end|>"), *messages[1:]]
            assert assistant_spans(tokenizer, flagged, kwargs).controls is not None
            assert assistant_spans(tokenizer, messages, kwargs).controls is None
            assert label_conversation(tokenizer, flagged, kwargs) == label_conversation(tokenizer, messages, kwargs)
            checked += 1
    assert checked > 200


def test_a_template_that_rewrites_content_is_refused_only_when_a_name_is_in_it(tiny_tokenizer):
    # The marker must pass through the template unchanged; a template that edits the names out does not.
    template = ("{% for m in messages %}<|start|>{{ m.role }}<|message|>{{ m.content | replace('<|end|>', '') }}"
                "{% if m.role == 'assistant' %}<|return|>{% else %}<|end|>{% endif %}{% endfor %}"
                "{% if add_generation_prompt %}<|start|>assistant{% endif %}")
    kwargs = dict(PINNED, chat_template=template)
    plain = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]
    assert label_conversation(tiny_tokenizer, plain, kwargs).supervised_tokens > 0
    with pytest.raises(TemplateMaskError, match="rewrites message content"):
        label_conversation(tiny_tokenizer, [plain[0], {"role": "assistant", "content": "ok <|end|>"}], kwargs)


def altered_tiny(tokenizer, change):
    """The tiny tokenizer with its tokenizers JSON changed by ``change`` (a dict -> None)."""
    import json

    from tokenizers import Tokenizer

    from tune.models.tokenizer_sentencepiece import wrap_fast_tokenizer
    from tune.models.tokenizer_tiny import SPECIAL_TOKEN_ROLES

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    change(spec)
    return wrap_fast_tokenizer(Tokenizer.from_str(json.dumps(spec)), SPECIAL_TOKEN_ROLES, add_bos_token=True,
                               add_eos_token=False, chat_template=tokenizer.chat_template)


def special_pieces_win(spec):  # as tune's conversion scored them before: a name read as text is still its id
    for piece in spec["model"]["vocab"][:14]:
        piece[1] = 0.0


def dummy_prefix_at_the_start_only(spec):  # the text after a special token no longer starts afresh
    spec["normalizer"] = {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
    spec["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}


@pytest.mark.parametrize("change, refusal", [(special_pieces_win, "even when reading it as text"),
                                             (dummy_prefix_at_the_start_only, "differently on its own")])
def test_a_tokenizer_that_cannot_read_names_as_text_is_refused_only_when_a_name_is_in_the_content(
        tiny_tokenizer, change, refusal):
    tokenizer = altered_tiny(tiny_tokenizer, change)
    plain = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]
    assert label_conversation(tokenizer, plain, PINNED).supervised_tokens > 0
    with pytest.raises(TemplateMaskError, match=refusal):
        label_conversation(tokenizer, [plain[0], {"role": "assistant", "content": "ok <|end|>"}], PINNED)
