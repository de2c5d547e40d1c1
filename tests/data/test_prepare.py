"""Preparation never loses a row silently: bad rows, overlong and unsupervised samples are counted."""

import json

import pytest

from tune.recipe import load_recipe
from tune.data.pipeline import prepare_data
from tune.errors import UserError

GOOD = {"messages": [{"role": "user", "content": "こんにちは"}, {"role": "assistant", "content": "こんにちは！"}]}
LONG = {"messages": [{"role": "user", "content": "長い質問 " * 200}, {"role": "assistant", "content": "短い答え"}]}
LINES = [
    json.dumps(GOOD, ensure_ascii=False),
    "{not json",
    json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]}),
    json.dumps({"messages": [{"role": "user", "content": "q", "thinking": "t"}, {"role": "assistant", "content": "a"}]}),
    json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ["a"]}]}),
    json.dumps(LONG, ensure_ascii=False),
]


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "rows.jsonl").write_text("\n".join(LINES) + "\n")
    path = tmp_path / "r.yaml"
    path.write_text("model: {name: tiny-llm-jp-4-8b}\ndata: {datasets: [{path: rows.jsonl}], max_seq_len: 256, eval_fraction: 0}\n")
    return path


def test_bad_rows_are_skipped_counted_by_reason_with_locations(recipe, tiny_tokenizer):
    prepared = prepare_data(load_recipe(recipe).recipe, tiny_tokenizer)
    stats = prepared.report.datasets[0]
    assert stats.rows_read == 6 and stats.samples == 1
    assert dict(stats.bad_rows) == {"invalid_json": 1, "empty_assistant": 1, "thinking_not_assistant": 1,
                                    "non_string_content": 1}
    assert stats.bad_examples["invalid_json"][0].startswith(f"{recipe.parent / 'rows.jsonl'}:line 2")
    assert stats.dropped_overlong == 1
    text = "\n".join(prepared.report.lines())
    assert "bad rows (empty_assistant): 1, e.g." in text and "dropped: longer than data.max_seq_len: 1" in text


def test_on_bad_row_error_stops_at_the_first_with_its_location(recipe, tiny_tokenizer):
    with pytest.raises(UserError, match=r"rows\.jsonl:line 2: bad row \(invalid_json\)"):
        prepare_data(load_recipe(recipe, ["data.on_bad_row=error"]).recipe, tiny_tokenizer)


def test_truncation_that_leaves_no_answer_is_reported_not_trained(recipe, tiny_tokenizer):
    prepared = prepare_data(load_recipe(recipe, ["data.overlong=truncate"]).recipe, tiny_tokenizer)
    stats = prepared.report.datasets[0]
    assert stats.truncated == 1 and stats.dropped_unsupervised == 1 and stats.samples == 1


def test_a_preference_card_in_an_sft_recipe_is_refused_at_load_with_its_key(recipe, recipe_error):
    text = recipe_error(recipe, ["data.datasets.0.card=ac-self-inst", "data.datasets.0.path=null",
                                 "data.datasets.0.use=samples"])
    assert "data.datasets.0: card 'ac-self-inst' holds preference rows, and method `sft` trains on conversations" in text


def test_preparation_refuses_a_preference_card_too(recipe, tiny_tokenizer):
    """Code that builds a Recipe without load_recipe still cannot train SFT on preference rows."""
    loaded = load_recipe(recipe, ["data.datasets.0.card=ac-self-inst", "data.datasets.0.path=null",
                                  "data.datasets.0.use=samples", "method.name=dpo"])
    sft = loaded.recipe.model_copy(update={"method": loaded.recipe.method.model_copy(update={"name": "sft", "dpo": None})})
    with pytest.raises(UserError, match="holds preference rows"):
        prepare_data(sft, tiny_tokenizer)
