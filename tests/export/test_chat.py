"""`tune chat`: the prompt is the chat template's rendering with the run's pinned date and effort,
generation stops where a Harmony reply ends (not after the thinking), only the final answer is
printed, and the REPL keeps the conversation."""

from __future__ import annotations

import pytest
import torch

PINNED_DATE, PINNED_EFFORT = "2025-01-15", "high"  # as tests/export/conftest.py pins them
from tune.cli import main

pytestmark = pytest.mark.slow

DENSE = "tiny-llm-jp-4-8b"


@pytest.fixture(scope="module")
def session(lora_runs):
    from tune.export.chat import open_session

    return open_session(lora_runs[DENSE])


class Scripted:
    """A logits processor that makes greedy generation write ``script`` token by token."""

    def __init__(self, prompt_length: int, script: list[int]):
        self.prompt_length, self.script = prompt_length, script

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.prompt_length
        forced = torch.full_like(scores, -float("inf"))
        forced[:, self.script[min(step, len(self.script) - 1)]] = 0.0
        return forced


def ids(tokenizer, *parts: str) -> list[int]:
    out = []
    for part in parts:
        out += tokenizer.convert_tokens_to_ids([part]) if part.startswith("<|") else tokenizer(part, add_special_tokens=False)["input_ids"]
    return out


def test_prompt_is_the_chat_template_rendering_with_the_runs_pinned_date_and_effort(session):
    tokenizer = session.tokenizer
    session.reset()
    reply = session.reply("日本の首都は？", max_new_tokens=6)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "日本の首都は？"}], tokenize=False,
                                         add_generation_prompt=True, conversation_start_date=PINNED_DATE,
                                         reasoning_effort=PINNED_EFFORT)
    assert f"Current date: {PINNED_DATE}" in text and f"Reasoning: {PINNED_EFFORT}" in text
    assert text.endswith("<|start|>assistant")
    assert reply.prompt_ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert reply.prompt_ids[0] != tokenizer.bos_token_id  # no bos: encoded as training encoded its samples
    # random weights: the reply ends at a stop token, or runs to max_new_tokens
    stops = set(tokenizer.convert_tokens_to_ids(["<|return|>", "<|call|>", "<|end|>"]))
    assert (reply.generated_ids[-1] in stops) == reply.stopped_at_end_token
    assert reply.stopped_at_end_token or len(reply.generated_ids) == 6


def test_generation_goes_on_after_the_thinking_and_stops_at_the_end_of_the_answer(session):
    tokenizer = session.tokenizer
    script = ids(tokenizer, "<|channel|>", "analysis", "<|message|>", "考え中", "<|end|>", "<|start|>", "assistant",
                 "<|channel|>", "final", "<|message|>", "東京です。", "<|return|>")
    tail = ids(tokenizer, "<|start|>", "user", "<|message|>", "まだ")
    session.reset()
    prompt_length = len(session.prompt_ids(session.conversation("日本の首都は？")))
    reply = session.reply("日本の首都は？", max_new_tokens=60, logits_processor=[Scripted(prompt_length, script + tail)])
    assert reply.generated_ids == script
    assert reply.stopped_at_end_token
    assert reply.final == "東京です。" and reply.thinking == "考え中"
    assert session.messages[-1] == {"role": "assistant", "content": "東京です。"}


@pytest.mark.parametrize("end", ["<|end|>", "<|call|>"])
def test_a_final_message_closed_by_end_or_a_tool_call_ends_the_reply(session, end):
    tokenizer = session.tokenizer
    if end == "<|end|>":
        script = ids(tokenizer, "<|channel|>", "final", "<|message|>", "はい", "<|end|>")
    else:
        script = ids(tokenizer, "<|channel|>", "commentary", " to=functions.search", "<|message|>", '{"q": "x"}', "<|call|>")
    tail = ids(tokenizer, "<|start|>", "assistant", "<|channel|>", "final", "<|message|>", "続き")
    session.reset()
    prompt_length = len(session.prompt_ids(session.conversation("hi")))
    reply = session.reply("hi", max_new_tokens=40, logits_processor=[Scripted(prompt_length, script + tail)])
    assert reply.generated_ids == script and reply.stopped_at_end_token
    if end == "<|end|>":
        assert reply.final == "はい"
    else:
        assert reply.tool_calls == ('functions.search {"q": "x"}',)


def test_one_shot_cli_prints_the_answer_of_greedy_generation(lora_runs, session, capsys):
    session.reset()
    expected = session.reply("hello", max_new_tokens=8).final
    capsys.readouterr()
    assert main(["chat", str(lora_runs[DENSE]), "--prompt", "hello", "--max-new-tokens", "8"]) == 0
    assert capsys.readouterr().out == expected + "\n"


def test_merged_folder_chats_like_its_run(merged, session):
    from tune.export.chat import open_session

    from_merged = open_session(merged[DENSE])
    assert from_merged.template_kwargs == {"conversation_start_date": PINNED_DATE, "reasoning_effort": PINNED_EFFORT}
    session.reset()
    assert from_merged.reply("日本の首都は？", max_new_tokens=10).generated_ids == session.reply("日本の首都は？", max_new_tokens=10).generated_ids


def test_repl_keeps_the_conversation_and_ends_on_exit_or_eof(session):
    from tune.export.chat import repl

    session.reset()
    lines = iter(["first", "/reset", "second", "", "third", "/exit", "never"])
    printed = []
    turns = repl(session, max_new_tokens=4, temperature=0.0, show_thinking=False, read=lambda _: next(lines), printer=printed.append)
    assert turns == 3 and next(lines) == "never"
    assert [m["content"] for m in session.messages if m["role"] == "user"] == ["second", "third"]
    third_prompt = session.tokenizer.decode(session.prompt_ids(session.conversation("x")))
    assert "second" in third_prompt and "third" in third_prompt and "first" not in third_prompt

    def eof(_):
        raise EOFError

    assert repl(session, 4, 0.0, False, read=eof, printer=printed.append) == 0


def test_chat_refuses_a_folder_that_is_no_run_and_no_model(tmp_path, capsys):
    assert main(["chat", str(tmp_path), "--prompt", "hi"]) == 2
    assert "neither a finished run folder" in capsys.readouterr().err
    assert main(["chat", str(tmp_path), "--prompt", "hi", "--max-new-tokens", "0"]) == 2
