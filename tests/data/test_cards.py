"""Dataset cards: every card validates, its samples convert cleanly and include an edge case;
the card schema refuses what it should."""

import json
from collections import Counter

import pytest
import yaml

from tune.data.cards import Card, CardError, card_names, card_samples_path, cards_dir, load_card
from tune.data.records import Conversation, Preference, record_key, record_kind
from tune.resources import shipped_cards_dir
from tests.data.converting import convert_dataset

LLMJP4_SUBSETS = {
    "daring_anteater", "flan", "jaster_v1.4.1", "llmjp_extraction_wiki_ja_v0.1", "llmjp_extraction_wiki_ja_v0.2",
    "llmjp_extraction_wiki_ja_v0.3", "llmjp_magpie_sft_v1.0", "logical_math_coding_wizard8x22b", "multiturn_calm3",
    "nemotron_post_v2_stem", "nemotron_post_v3_chat", "nemotron_post_v3_if", "nemotron_post_v3_math",
    "random_to_fixed_multiturn_calm3", "self_system_question", "synthetic_jp_en_coding", "system_prompt_question",
}
NAMES = card_names()


def raw_rows(card):
    lines = card_samples_path(card).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def converted(card, folder):
    """The card's sample records, converted as preparation converts them, and the dataset's stats."""
    return convert_dataset({"card": card.name, "use": "samples"}, folder)


def is_edge_case(card, raw, record) -> bool:
    """A sample that exercises more than the plainest path of its converter."""
    if isinstance(record, Conversation):
        users = sum(m["role"] == "user" for m in record.messages)
        leading = record.messages[0]["role"] in ("system", "developer")
        tools = any(m.get("tool_calls") for m in record.messages)
        if card.source.converter == "alpaca":
            column = card.source.fields.get("input", "input")
            blank_input = column in raw and not (raw[column] or "").strip()
            return blank_input or leading or "\n" in record.messages[-2]["content"]
        thinking = any("thinking" in m for m in record.messages)
        if card.source.converter == "llmjp4_sft":
            return users > 1 or leading
        return users > 1 or leading or tools or thinking
    if isinstance(record, Preference):
        return (len(record.prompt) > 1 or len(record.chosen) > 1 or any("thinking" in m for m in record.chosen)
                or "\n" in record.prompt[-1]["content"])
    return False


def test_cards_live_in_the_shipped_folder():
    assert cards_dir() == shipped_cards_dir()
    assert cards_dir().is_dir()


def test_card_counts_by_kind():
    kinds = Counter(load_card(name).kind for name in NAMES)
    assert kinds == {"sft": 22, "preference": 4}


def test_the_17_llmjp4_subsets_each_have_one_card():
    configs = [load_card(n).config for n in NAMES if load_card(n).provenance.relation == "llmjp4_sft_subset"]
    assert sorted(configs) == sorted(LLMJP4_SUBSETS)
    assert all(load_card(n).hf_id == "llm-jp/llm-jp-4-thinking-sft-data" for n in NAMES
               if load_card(n).provenance.relation == "llmjp4_sft_subset")


@pytest.mark.parametrize("name", NAMES)
def test_card_validates_and_matches_its_file(name):
    card = load_card(name)
    assert card.name == name
    assert card.samples == f"{name}.samples.jsonl"
    raw = yaml.safe_load((cards_dir() / f"{name}.yaml").read_text(encoding="utf-8"))
    assert Card.model_validate(raw) == card


@pytest.mark.parametrize("name", NAMES)
def test_samples_convert_cleanly_to_the_cards_kind(name, tmp_path):
    card = load_card(name)
    rows = raw_rows(card)
    assert len(rows) >= 3
    records, stats = converted(card, tmp_path)
    assert not stats.bad_rows, stats.bad_examples
    assert len(records) == len(rows) == stats.rows_read
    assert {record_kind(record) for record in records} == {card.kind}
    assert len({record_key(record) for record in records}) == len(rows), "duplicate sample rows"


@pytest.mark.parametrize("name", NAMES)
def test_samples_include_an_edge_case(name, tmp_path):
    card = load_card(name)
    rows = raw_rows(card)
    records, _ = converted(card, tmp_path)
    assert any(is_edge_case(card, raw, record) for raw, record in zip(rows, records))


@pytest.mark.parametrize("name", NAMES)
def test_samples_hold_each_listed_shape_and_no_other(name, tmp_path):
    card = load_card(name)
    _, stats = converted(card, tmp_path)
    assert set(stats.shapes) == {shape.name for shape in card.shapes}


def test_cards_read_both_ways_say_so_and_how_sure_they_are():
    seen = {name: {shape.name: shape.confidence for shape in load_card(name).shapes}
            for name in ("oasst2-33k-ja", "llm-jp-4-8b-thinking-dpo", "llm-jp-4-32b-a3b-thinking-dpo")}
    assert seen == {"oasst2-33k-ja": {"role_content": "likely", "from_value": "unknown"},
                    "llm-jp-4-8b-thinking-dpo": {"strings": "unknown", "harmony": "unknown"},
                    "llm-jp-4-32b-a3b-thinking-dpo": {"strings": "unknown", "harmony": "unknown"}}


def test_llmjp4_samples_carry_thinking_and_reasoning_effort(tmp_path):
    for name in NAMES:
        card = load_card(name)
        if card.source.converter != "llmjp4_sft":
            continue
        records, _ = converted(card, tmp_path / name)
        assert all(r.reasoning_effort in ("low", "medium", "high") for r in records), name
        assert all(any("thinking" in m for m in r.messages) for r in records), name


def rendered_conversations(record):
    if isinstance(record, Conversation):
        return [list(record.messages)]
    return [list(record.prompt + record.chosen), list(record.prompt + record.rejected)]


@pytest.mark.parametrize("name", NAMES)
def test_samples_render_with_the_chat_template(name, tiny_tokenizer, tmp_path):
    card = load_card(name)
    for record in converted(card, tmp_path)[0]:
        effort = getattr(record, "reasoning_effort", None) or "medium"
        for messages in rendered_conversations(record):
            text = tiny_tokenizer.apply_chat_template(messages, tokenize=False, conversation_start_date="2025-01-01",
                                                      reasoning_effort=effort)
            assert text.endswith(messages[-1]["content"] + "<|return|>")


def test_unknown_card_suggests_the_closest_names():
    with pytest.raises(ValueError) as caught:
        load_card("oasst2-33k")
    assert "`oasst2-33k-ja`" in str(caught.value)
    assert isinstance(caught.value, CardError)


def valid_card_dict(**changes):
    data = yaml.safe_load((cards_dir() / "oasst2-33k-ja.yaml").read_text(encoding="utf-8"))
    data.update(changes)
    return data


@pytest.mark.parametrize("changes, message", [
    ({"kind": "preference"}, "converter `sharegpt` makes 'sft'"),
    ({"source": {"converter": "sharegtp", "fields": {}}}, "did you mean `sharegpt`"),
    ({"source": {"converter": "sharegpt", "fields": {"messages": "m"}}}, "no field 'messages'"),
    ({"extra_key": 1}, "extra_key"),
    ({"name": "OASST2_33k"}, "name"),
    ({"default_weight": 0}, "default_weight"),
    ({"samples": "../x.jsonl"}, "samples"),
    ({"provenance": {"relation": "llmjp5", "confidence": "likely", "source": "x"}}, "provenance.relation"),
    ({"provenance": {"relation": "other", "confidence": "sure", "source": "x"}}, "provenance.confidence"),
    ({"shapes": [{"name": "harmony", "confidence": "likely", "source": "x"}]}, "converter `sharegpt` reads no shape 'harmony'"),
    ({"shapes": [{"name": "from_value", "confidence": "likely", "source": "x"}] * 2}, "listed twice"),
    ({"shapes": [{"name": "from_value", "confidence": "sure", "source": "x"}]}, "shapes.0.confidence"),
    ({"shapes": [{"name": "from_value", "confidence": "likely", "source": ""}]}, "shapes.0.source"),
    ({"shapes": [{"name": "from_value", "confidence": "likely"}]}, "shapes.0.source"),
    ({"shapes": []}, "shapes"),
])
def test_card_schema_refuses(changes, message):
    with pytest.raises(ValueError) as caught:
        Card.model_validate(valid_card_dict(**changes))
    assert message in str(caught.value)


def test_card_fields_must_be_stated_even_when_unknown():
    data = valid_card_dict()
    del data["revision"]
    with pytest.raises(ValueError, match="revision"):
        Card.model_validate(data)
    data = valid_card_dict()
    del data["shapes"]
    with pytest.raises(ValueError, match="shapes"):
        Card.model_validate(data)
