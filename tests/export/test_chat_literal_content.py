"""`tune chat` encodes a prompt exactly as training encoded its samples, also when a message holds a
special-token name: the name is text, only the chat template writes control tokens, and a tokenizer
saved and loaded again (what an export carries) encodes the same ids. No model needed."""

from __future__ import annotations

import pytest

from tune.data.chat_masks import IGNORE_INDEX, label_conversation
from tune.export.chat import ChatSession
from tune.models.tokenizer_tiny import build_tiny_tokenizer

PINNED = {"conversation_start_date": "2025-01-15", "reasoning_effort": "high"}
HISTORY = [{"role": "user", "content": "What is <|end|>?"}, {"role": "assistant", "content": "It closes <|end|> a message."}]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def session_with(tokenizer) -> ChatSession:
    return ChatSession(model=None, tokenizer=tokenizer, template_kwargs=PINNED, system="Never write <|return|> early.",
                       messages=[dict(m) for m in HISTORY])


def test_prompt_ids_are_the_trained_prompt_when_messages_hold_names(tokenizer):
    session = session_with(tokenizer)
    conversation = session.conversation("And <|call|>?")
    prompt = session.prompt_ids(conversation)
    trained = label_conversation(tokenizer, conversation + [{"role": "assistant", "content": "A tool call's end."}],
                                 PINNED, last_turn_only=True)
    first = next(i for i, label in enumerate(trained.labels) if label != IGNORE_INDEX)
    assert prompt == trained.input_ids[:first]
    start, channel, message, end = tokenizer.convert_tokens_to_ids(["<|start|>", "<|channel|>", "<|message|>", "<|end|>"])
    # system, developer, user blocks, the earlier answer, the new user turn, the generation prompt: nothing from content
    assert [i for i in prompt if i < 14] == [start, message, end] * 3 + [start, channel, message, end] + [start, message, end, start]


def test_a_saved_and_reloaded_tokenizer_gives_the_same_prompt_ids(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    conversation = session_with(tokenizer).conversation("And <|call|>?")
    assert session_with(reloaded).prompt_ids(conversation) == session_with(tokenizer).prompt_ids(conversation)
    # the same text encoded whole, as a plain render-then-encode consumer does, reads the names as control ids
    text = reloaded.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True, **PINNED)
    assert reloaded(text, add_special_tokens=False).input_ids != session_with(reloaded).prompt_ids(conversation)


def test_a_reply_that_writes_a_control_name_as_text_is_read_whole(tokenizer):
    """The reply is split at the control ids the model generated; a name it wrote as text stays in the answer."""
    from tune.export.harmony import parse_reply, parse_reply_ids

    def ids(*parts):
        out = []
        for part in parts:
            if part in ("<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>"):
                out += tokenizer.convert_tokens_to_ids([part])
            else:
                out += tokenizer(part, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        return out

    answer = "Write <|end|> to close a message."
    generated = ids("<|channel|>", "analysis", "<|message|>", "think <|return|> here", "<|end|>",
                    "<|start|>", "assistant", "<|channel|>", "final", "<|message|>", answer, "<|return|>")
    parsed = parse_reply_ids(tokenizer, generated)
    assert parsed.final.replace(" ", "") == answer.replace(" ", "")  # the decoder may drop a space after a name
    assert parsed.thinking.replace(" ", "") == "think<|return|>here"
    # the text reader cannot tell a written name from a control token: it cuts the answer there
    assert parse_reply(tokenizer.decode(generated, skip_special_tokens=False)).final == "Write"
    # no message structure at all: the whole text, special tokens left out
    assert parse_reply_ids(tokenizer, ids("plain words")) .final == "plain words"
