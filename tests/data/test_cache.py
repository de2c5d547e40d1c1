"""The prepared-data cache hits exactly when nothing that shapes the samples changed."""

import copy
import json

import pytest

from tune.recipe import load_recipe
from tune.data.pipeline import prepare_data

ROWS = [
    {"messages": [{"role": "user", "content": f"質問 {i}"}, {"role": "assistant", "content": f"答え {i}"}]}
    for i in range(12)
]


@pytest.fixture
def setup(tmp_path, monkeypatch, tiny_tokenizer):
    monkeypatch.setenv("TUNE_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model: {name: tiny-llm-jp-4-8b}\n"
        "data:\n  datasets:\n    - {path: rows.jsonl}\n    - {card: oasst2-33k-ja, use: samples}\n"
        f"output: {{dir: {tmp_path / 'run'}}}\n"
    )

    def prepared(*overrides, tokenizer=tiny_tokenizer):
        return prepare_data(load_recipe(recipe, list(overrides)).recipe, tokenizer)

    return prepared, data


def test_same_inputs_hit_and_a_new_output_dir_still_hits(setup, tmp_path):
    prepared, _ = setup
    first = prepared()
    assert not first.from_cache
    again = prepared(f"output.dir={tmp_path / 'elsewhere'}", "train.lr=1e-3", "train.max_steps=5")
    assert again.from_cache and again.key == first.key
    assert again.train["input_ids"] == first.train["input_ids"]


@pytest.mark.parametrize("override", [
    "data.max_seq_len=300", "data.packing=true", "train.seed=7", "data.train_on=last_assistant",
    "data.template=instruct_ja", "data.reasoning_effort=high", "data.conversation_start_date=2026-05-01",
    "data.datasets.0.weight=2", "data.eval_fraction=0.2",
])
def test_each_option_that_shapes_samples_misses(setup, override):
    prepared, _ = setup
    base = prepared()
    changed = prepared(override)
    assert not changed.from_cache and changed.key != base.key


def test_changed_file_contents_tokenizer_or_template_miss(setup, tiny_tokenizer):
    prepared, data = setup
    base = prepared()
    other_template = copy.deepcopy(tiny_tokenizer)
    other_template.chat_template = tiny_tokenizer.chat_template.replace("Knowledge cutoff", "Knowledge  cutoff")
    assert prepared(tokenizer=other_template).key != base.key
    other_vocab = copy.deepcopy(tiny_tokenizer)
    other_vocab.add_tokens(["<extra>"])
    assert prepared(tokenizer=other_vocab).key != base.key
    data.write_text(data.read_text() + json.dumps(ROWS[0] | {"messages": ROWS[0]["messages"][:1] + [
        {"role": "assistant", "content": "別の答え"}]}, ensure_ascii=False) + "\n")
    assert prepared().key != base.key


def test_converter_version_and_card_revision_are_in_the_key(setup, monkeypatch):
    import dataclasses

    from tune.data import cards, converters

    prepared, _ = setup
    base = prepared().key
    bumped = dataclasses.replace(converters.CONVERTERS["messages"], version=converters.CONVERTERS["messages"].version + 1)
    monkeypatch.setitem(converters.CONVERTERS, "messages", bumped)
    assert prepared().key != base
    monkeypatch.undo()
    real_load = cards.load_card
    monkeypatch.setattr(cards, "load_card", lambda name: real_load(name).model_copy(update={"revision": "0123abc"}))
    assert prepared().key != base
