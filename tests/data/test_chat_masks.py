"""Assistant-only labels derived by prefix rendering, checked on the text a user would audit."""

import pytest

from tests.data.supervision import supervised_runs
from tune.data.chat_masks import IGNORE_INDEX, TemplateMaskError, label_conversation

PINNED = {"conversation_start_date": "2026-04-01", "reasoning_effort": "medium"}


def test_single_turn_trains_answer_and_return_marker_only(tiny_tokenizer):
    messages = [{"role": "user", "content": "富士山の高さは？"}, {"role": "assistant", "content": "3,776メートルです。"}]
    sample = label_conversation(tiny_tokenizer, messages, PINNED)
    assert supervised_runs(tiny_tokenizer, sample) == ["<|channel|>final<|message|>3,776メートルです。<|return|>"]
    assert sample.input_ids[-1] == tiny_tokenizer.convert_tokens_to_ids("<|return|>")


def test_every_assistant_turn_of_a_multi_turn_chat_is_trained_with_its_end_marker(tiny_tokenizer):
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "6"},
    ]
    sample = label_conversation(tiny_tokenizer, messages, PINNED)
    assert supervised_runs(tiny_tokenizer, sample) == [
        "<|channel|>final<|message|>4<|end|>",
        "<|channel|>final<|message|>6<|return|>",
    ]
    text = "".join(supervised_runs(tiny_tokenizer, sample))
    for not_trained in ("Answer briefly", "2+2", "3+3", "system", "user"):
        assert not_trained not in text


def test_thinking_of_the_last_turn_is_trained_with_the_answer(tiny_tokenizer):
    messages = [
        {"role": "user", "content": "Is 91 prime?"},
        {"role": "assistant", "content": "No: 91 = 7 x 13.", "thinking": "Try 7: 7*13 = 91."},
    ]
    sample = label_conversation(tiny_tokenizer, messages, PINNED)
    assert supervised_runs(tiny_tokenizer, sample) == [
        "<|channel|>analysis<|message|>Try 7: 7*13 = 91.<|end|><|start|>assistant"
        "<|channel|>final<|message|>No: 91 = 7 x 13.<|return|>"
    ]


def test_tool_call_is_trained_and_tool_result_is_not(tiny_tokenizer):
    messages = [
        {"role": "user", "content": "Weather in Tokyo?"},
        {"role": "assistant", "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Tokyo"}}}]},
        {"role": "tool", "content": "sunny"},
        {"role": "assistant", "content": "It is sunny."},
    ]
    sample = label_conversation(tiny_tokenizer, messages, PINNED)
    runs = supervised_runs(tiny_tokenizer, sample)
    assert len(runs) == 2
    # the run opens with the token "▁to"; decoding a run drops its leading "▁" like any text start
    assert runs[0] == 'to=functions.weather<|channel|>commentary json<|message|>{"city": "Tokyo"}<|call|>'
    call_start = sample.labels.index(next(label for label in sample.labels if label != -100))
    assert tiny_tokenizer.convert_ids_to_tokens(sample.input_ids[call_start]).startswith("▁")
    assert runs[1] == "<|channel|>final<|message|>It is sunny.<|return|>"
    assert "sunny\"" not in "".join(runs)


def test_labels_align_with_ids_and_prompt_is_masked(tiny_tokenizer):
    messages = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]
    sample = label_conversation(tiny_tokenizer, messages, PINNED)
    assert len(sample.labels) == len(sample.input_ids)
    assert sample.input_ids[0] != tiny_tokenizer.bos_token_id  # same stream as apply_chat_template
    first_supervised = next(i for i, label in enumerate(sample.labels) if label != IGNORE_INDEX)
    prompt = tiny_tokenizer.decode(sample.input_ids[:first_supervised], skip_special_tokens=False)
    assert prompt.endswith("<|start|>user<|message|>hello<|end|><|start|>assistant")
    assert "Current date: 2026-04-01" in prompt


def test_conversation_opening_with_assistant_is_refused(tiny_tokenizer):
    with pytest.raises(TemplateMaskError):
        label_conversation(tiny_tokenizer, [{"role": "assistant", "content": "hi"}], PINNED)
