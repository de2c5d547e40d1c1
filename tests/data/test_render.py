"""Rendering options: the instruct_ja (### 指示 / ### 応答) template, last-turn-only training, pinned kwargs."""

from tune.config.schema import DataSection
from tests.data.supervision import supervised_runs
from tune.data.records import Conversation
from tune.data.render import render_record

MULTI_TURN = Conversation((
    {"role": "user", "content": "日本の首都は？"},
    {"role": "assistant", "content": "東京です。"},
    {"role": "user", "content": "人口は？"},
    {"role": "assistant", "content": "約1400万人です。", "thinking": "統計を思い出す"},
))


def section(**options) -> DataSection:
    return DataSection(datasets=[{"path": "/x.jsonl"}], **options)


def supervised_text(tokenizer, sample) -> str:
    return " | ".join(supervised_runs(tokenizer, sample))


def test_instruct_ja_renders_llm_jp_prompt_and_trains_answers_with_eos(tiny_tokenizer):
    sample = render_record(tiny_tokenizer, MULTI_TURN, section(template="instruct_ja"))
    text = tiny_tokenizer.decode(sample.input_ids, skip_special_tokens=False)
    assert text == (
        "<|startoftext|>以下は、タスクを説明する指示です。要求を適切に満たす応答を書きなさい。"
        "\n\n### 指示:\n日本の首都は？\n\n### 応答:\n東京です。<|return|>"
        "\n\n### 指示:\n人口は？\n\n### 応答:\n約1400万人です。<|return|>"
    )
    runs = supervised_runs(tiny_tokenizer, sample)
    assert runs == ["東京です。<|return|>", "約1400万人です。<|return|>"]


def test_last_assistant_only_trains_the_final_turn(tiny_tokenizer):
    sample = render_record(tiny_tokenizer, MULTI_TURN, section(train_on="last_assistant"))
    supervised = supervised_text(tiny_tokenizer, sample)
    assert "東京です。" not in supervised
    assert "統計を思い出す" in supervised and "約1400万人です。<|return|>" in supervised


def test_row_reasoning_effort_wins_over_the_recipe_fallback(tiny_tokenizer):
    row = Conversation(MULTI_TURN.messages, reasoning_effort="high")
    high = tiny_tokenizer.decode(render_record(tiny_tokenizer, row, section(reasoning_effort="low")).input_ids)
    low = tiny_tokenizer.decode(render_record(tiny_tokenizer, MULTI_TURN, section(reasoning_effort="low")).input_ids)
    assert "Reasoning: high" in high and "Reasoning: low" in low
    assert "Current date: 2026-04-01" in low
