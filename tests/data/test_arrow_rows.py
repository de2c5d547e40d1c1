"""Rows read from parquet / Arrow / the Hub convert exactly as the same rows read from JSONL.

Arrow gives every row every column and every object (struct) every key any row of the file has,
with null where the row has none. Converters count a null key as absent at every depth, so:
each card's samples written through `datasets` to parquet and read back through tune's real paths
(a local parquet copy, and the Hub path, which iterates a `datasets` dataset) render
byte-identically to the JSONL path; and, converter by converter, rows shaped as Arrow gives them
(``arrow_shaped``: through a real Arrow table) convert to the same records as the rows themselves,
tool-call arguments equal as parsed JSON.
"""

import json
from collections import defaultdict

import pyarrow as pa
import pytest

from tune.config.schema import DataSection
from tune.data.cards import card_names, card_samples_path, load_card
from tune.data.converters import get_converter
from tune.data.records import Conversation, Preference
from tune.data.render import render_record, render_text
from tests.data.converting import blocks, convert_dataset, system_object

NAMES = card_names()
DATA = DataSection(datasets=[{"path": "/x.jsonl"}])


def arrow_shaped(rows: list[dict]) -> list[dict]:
    """``rows`` as a parquet file, an Arrow table or the Hub's `datasets` give them back: every row
    every column (a table's columns are the union of the rows' keys), every object every key."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return pa.Table.from_pylist([{column: row.get(column) for column in columns} for row in rows]).to_pylist()


def holds_null_key(value) -> bool:
    if isinstance(value, dict):
        return any(item is None or holds_null_key(item) for item in value.values())
    if isinstance(value, list):
        return any(holds_null_key(item) for item in value)
    return False


def converted(name, rows, fields=None):
    return [get_converter(name)(row, fields) for row in rows]


def sample_rows(card) -> list[dict]:
    return [json.loads(line) for line in card_samples_path(card).read_text(encoding="utf-8").splitlines() if line.strip()]


def parquet_through_datasets(rows: list[dict], folder, stem: str, json_text: bool = False):
    """``rows`` written as JSONL, loaded by `datasets`' JSON loader and saved by it as parquet.

    By default the loader unifies a file's objects into Arrow structs, null for every key a row
    lacks (what pyarrow, pandas and `datasets` < 5 write). With ``json_text`` it does what
    `datasets` >= 5 does by default: objects whose keys differ are kept as JSON text (`Json`
    features), which `datasets` decodes again when it iterates the rows.
    """
    import datasets

    jsonl = folder / f"{stem}.jsonl"
    jsonl.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    options = {} if json_text else {"on_mixed_types": None}
    dataset = datasets.load_dataset("json", data_files=str(jsonl), split="train", cache_dir=str(folder / "hf-cache"), **options)
    parquet = folder / f"{stem}.parquet"
    dataset.to_parquet(str(parquet))
    return parquet


def from_the_hub(name: str, parquet, folder, monkeypatch):
    """The card's dataset read by tune's Hub path (tune.data.sources), the Hub answering with ``parquet``."""
    import datasets

    load = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: load(
        "parquet", data_files=str(parquet), split="train", cache_dir=str(folder / "hf-cache")))
    try:
        return convert_dataset({"card": name}, folder / "hub")
    finally:
        monkeypatch.setattr(datasets, "load_dataset", load)


def rendered(tokenizer, record) -> list:
    """What training renders of ``record``: text and assistant spans, ids and labels, of each conversation
    (for a pair: prompt + chosen and prompt + rejected)."""
    if isinstance(record, Conversation):
        conversations = [record]
    else:
        conversations = [Conversation(record.prompt + answer, record.reasoning_effort)
                         for answer in (record.chosen, record.rejected)]
    out = []
    for conversation in conversations:
        sample = render_record(tokenizer, conversation, DATA)
        out.append((render_text(tokenizer, conversation, DATA), sample.input_ids, sample.labels))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_card_samples_from_parquet_and_the_hub_render_as_from_jsonl(name, tiny_tokenizer, tmp_path, monkeypatch):
    card = load_card(name)
    rows = sample_rows(card)
    jsonl_records, jsonl_stats = convert_dataset({"card": name, "use": "samples"}, tmp_path / "jsonl")
    assert not jsonl_stats.bad_rows
    # One parquet file per shape: an Arrow column cannot hold a string in one row and a list in another.
    by_shape = defaultdict(list)
    converter = get_converter(card.source.converter)
    for row, record in zip(rows, jsonl_records):
        by_shape[converter.read(row, card.source.fields).shape].append((row, record))
    for shape, pairs in by_shape.items():
        shape_rows, expected = [row for row, _ in pairs], [record for _, record in pairs]
        structs = parquet_through_datasets(shape_rows, tmp_path, f"{shape}-structs")
        json_text = parquet_through_datasets(shape_rows, tmp_path, f"{shape}-json", json_text=True)
        for how, (records, stats) in {
            "parquet file": convert_dataset({"card": name, "path": str(structs)}, tmp_path / f"{shape}-file"),
            "parquet file, json text": convert_dataset({"card": name, "path": str(json_text)}, tmp_path / f"{shape}-file-json"),
            "hub, structs": from_the_hub(name, structs, tmp_path / f"{shape}-hub-structs", monkeypatch),
            "hub, json text": from_the_hub(name, json_text, tmp_path / f"{shape}-hub-json", monkeypatch),
        }.items():
            assert not stats.bad_rows, (how, stats.bad_examples)
            assert dict(stats.shapes) == {shape: len(pairs)}, how
            assert records == expected, how
            for record, expected_record in zip(records, expected):
                assert rendered(tiny_tokenizer, record) == rendered(tiny_tokenizer, expected_record), how


def test_card_samples_as_arrow_writes_them_do_hold_null_keys(tmp_path):
    # So the test above meets the nulls: a text block gains every system-object key, null.
    import pyarrow.parquet as pq

    card = load_card("llm-jp-4-sft-flan")
    rows = sample_rows(card)
    parquet = parquet_through_datasets(rows, tmp_path, "flan")
    written = pq.read_table(parquet).to_pylist()
    user_block = written[0]["messages"][1]["content"][0]
    assert user_block["type"] == "text" and user_block["model_identity"] is None and user_block["reasoning_effort"] is None
    records, _ = convert_dataset({"card": card.name, "path": str(parquet)}, tmp_path / "out")
    assert [r.reasoning_effort for r in records] == [row["messages"][0]["content"][0]["reasoning_effort"] for row in rows]


# --- converter by converter -------------------------------------------------------------------


LLMJP4_ROWS = [
    {"ID": "a", "messages": [system_object("high"), {"role": "user", "content": blocks("1+1は？")},
                             {"role": "assistant", "channel": "analysis", "content": blocks("足し算。")},
                             {"role": "assistant", "channel": "final", "content": blocks("2")}]},
    {"ID": "b", "messages": [{"role": "system", "content": blocks("丁寧に答えてください。")},
                             {"role": "user", "content": blocks("q")},
                             {"role": "assistant", "channel": "final", "content": blocks("a")}]},
    {"ID": "c", "messages": [system_object("low"),
                             {"role": "developer", "content": [{"type": "developer_content", "instructions": "敬語で"}]},
                             {"role": "user", "content": blocks("q2")}, {"role": "assistant", "content": blocks("a2")}]},
]


def test_llmjp4_arrow_rows_keep_a_system_text_message_and_the_reasoning_effort():
    arrow = arrow_shaped(LLMJP4_ROWS)
    assert all(holds_null_key(row) for row in arrow)
    assert converted("llmjp4_sft", arrow) == converted("llmjp4_sft", LLMJP4_ROWS)
    assert converted("llmjp4_sft", arrow) == [
        Conversation(({"role": "user", "content": "1+1は？"}, {"role": "assistant", "content": "2", "thinking": "足し算。"}), "high"),
        Conversation(({"role": "system", "content": "丁寧に答えてください。"}, {"role": "user", "content": "q"},
                      {"role": "assistant", "content": "a"})),
        Conversation(({"role": "developer", "content": "敬語で"}, {"role": "user", "content": "q2"},
                      {"role": "assistant", "content": "a2"}), "low"),
    ]


def test_llmjp4_a_hand_written_arrow_row_of_the_issue():
    # A system text block as Arrow gives it next to system objects: every system-object key, null.
    text_block = {"type": "text", "text": "丁寧に", "model_identity": None, "reasoning_effort": None,
                  "conversation_start_date": None, "knowledge_cutoff": None, "channel_config": None}
    row = {"ID": "x", "messages": [
        {"role": "system", "channel": None, "content": [text_block]},
        {"role": "user", "channel": None, "content": [{**text_block, "text": "q"}]},
        {"role": "assistant", "channel": "final", "content": [{**text_block, "text": "a"}]}]}
    assert get_converter("llmjp4_sft")(row) == Conversation(
        ({"role": "system", "content": "丁寧に"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}))


MESSAGES_ROWS = [
    {"messages": [{"role": "user", "content": "東京の天気は？"},
                  {"role": "assistant", "tool_calls": [{"name": "weather", "arguments": {"city": "Tokyo", "days": 3}}]},
                  {"role": "tool", "content": "晴れ"},
                  {"role": "assistant", "content": "晴れです。", "thinking": "結果を伝える"}]},
    {"messages": [{"role": "system", "content": "簡潔に"}, {"role": "user", "content": "検索して"},
                  {"role": "assistant", "content": None, "tool_calls": [
                      {"id": "c1", "type": "function", "function": {"name": "search", "arguments": "{\"query\": \"x\"}"}}]},
                  {"role": "tool", "content": "結果", "tool_call_id": "c1"},
                  {"role": "assistant", "content": "見つかりました。"}]},
    {"messages": [{"role": "user", "content": "予定を入れて"},
                  {"role": "assistant", "tool_calls": [{"name": "calendar", "arguments": {
                      "event": {"title": "会議", "at": "10:00"}, "attendees": [{"name": "a"}, {"email": "b@x"}]}}]},
                  {"role": "tool", "content": "ok"}, {"role": "assistant", "content": "入れました。"}]},
]


def test_messages_arrow_rows_give_the_same_tool_call_arguments_as_parsed_json():
    arrow = arrow_shaped(MESSAGES_ROWS)
    call = arrow[0]["messages"][1]["tool_calls"][0]
    assert call["arguments"]["event"] is None and call["function"] is None  # what Arrow added
    records = converted("messages", arrow)
    assert records == converted("messages", MESSAGES_ROWS)
    assert records[0].messages[1]["tool_calls"] == [{"name": "weather", "arguments": {"city": "Tokyo", "days": 3}}]
    assert records[1].messages[2]["tool_calls"] == [{"name": "search", "arguments": {"query": "x"}}]
    assert records[2].messages[1]["tool_calls"][0]["arguments"] == {
        "event": {"title": "会議", "at": "10:00"}, "attendees": [{"name": "a"}, {"email": "b@x"}]}


def test_a_null_argument_is_dropped_from_jsonl_too_as_arrow_cannot_tell_it_from_an_added_one():
    row = {"messages": [{"role": "user", "content": "q"},
                        {"role": "assistant", "tool_calls": [{"name": "f", "arguments": {"unit": None, "n": 1}}]},
                        {"role": "tool", "content": "ok"}, {"role": "assistant", "content": "a"}]}
    as_string = json.loads(json.dumps(row))
    as_string["messages"][1]["tool_calls"][0]["arguments"] = "{\"unit\": null, \"n\": 1}"
    for source in (row, as_string, arrow_shaped([row])[0]):
        assert get_converter("messages")(source).messages[1]["tool_calls"] == [{"name": "f", "arguments": {"n": 1}}]


SHAREGPT_ROWS = [
    {"conversations": [{"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"}], "system": "be kind"},
    {"conversations": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2", "thinking": "t"}]},
    {"conversations": [{"from": "human", "value": "天気は？"},
                       {"from": "function_call", "value": "{\"name\": \"weather\", \"arguments\": {\"city\": \"Osaka\", \"unit\": null}}"},
                       {"from": "observation", "value": "rain"}, {"from": "gpt", "value": "雨です。"}]},
]


def test_sharegpt_arrow_rows_of_both_shapes_in_one_file():
    arrow = arrow_shaped(SHAREGPT_ROWS)
    assert arrow[0]["conversations"][0] == {"from": "human", "value": "q1", "role": None, "content": None, "thinking": None}
    assert arrow[1]["system"] is None
    sharegpt = get_converter("sharegpt")
    fields = sharegpt.resolve_fields({"system": "system"})
    assert [sharegpt.read(row, fields) for row in arrow] == [sharegpt.read(row, fields) for row in SHAREGPT_ROWS]
    assert [sharegpt.read(row, fields).shape for row in arrow] == ["from_value", "role_content", "from_value"]
    assert sharegpt(arrow[2]).messages[1]["tool_calls"] == [{"name": "weather", "arguments": {"city": "Osaka"}}]


ALPACA_ROWS = [
    {"instruction": "要約して", "input": "長い文章", "output": "短い文章"},
    {"instruction": "挨拶して", "output": "こんにちは", "sys": "丁寧に"},
    {"instruction": "数えて", "input": "", "output": "1, 2, 3"},
]


def test_alpaca_arrow_rows():
    arrow = arrow_shaped(ALPACA_ROWS)
    assert arrow[1]["input"] is None and arrow[0]["sys"] is None
    assert converted("alpaca", arrow, {"system": "sys"}) == converted("alpaca", ALPACA_ROWS, {"system": "sys"})
    assert converted("alpaca", arrow, {"system": "sys"})[1].messages[0] == {"role": "system", "content": "丁寧に"}


PREFERENCE_HARMONY_ROWS = [
    {"prompt": [system_object("high"), {"role": "user", "content": blocks("7 × 8 は？")}],
     "chosen": [{"role": "assistant", "channel": "analysis", "content": blocks("九九。")},
                {"role": "assistant", "channel": "final", "content": blocks("56")}],
     "rejected": [{"role": "assistant", "channel": "final", "content": blocks("54")}]},
    {"prompt": [{"role": "user", "content": blocks("q")},
                {"role": "assistant", "channel": "final", "content": blocks("a")},
                {"role": "user", "content": blocks("q2")}],
     "chosen": [{"role": "assistant", "content": blocks("good")}],
     "rejected": [{"role": "assistant", "content": blocks("bad")}]},
]
PREFERENCE_MESSAGE_ROWS = [
    {"prompt": [{"role": "user", "content": "天気は？"}],
     "chosen": [{"role": "assistant", "tool_calls": [{"name": "weather", "arguments": {"city": "Tokyo"}}]}],
     "rejected": [{"role": "assistant", "content": "わかりません", "thinking": "調べない"}]},
    {"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "探して"}],
     "chosen": [{"role": "assistant", "content": "検索します", "tool_calls": [{"name": "search", "arguments": {"query": "x"}}]}],
     "rejected": [{"role": "assistant", "content": "bad"}]},
]
PREFERENCE_STRING_ROWS = [
    {"prompt": "p", "chosen": "good", "rejected": "bad", "sys": "s"},
    {"prompt": "p2", "chosen": "good2", "rejected": "bad2"},
]


@pytest.mark.parametrize("rows, shape", [(PREFERENCE_HARMONY_ROWS, "harmony"), (PREFERENCE_MESSAGE_ROWS, "messages"),
                                         (PREFERENCE_STRING_ROWS, "strings")])
def test_preference_arrow_rows(rows, shape):
    arrow = arrow_shaped(rows)
    assert any(holds_null_key(row) for row in arrow)
    preference = get_converter("preference")
    fields = preference.resolve_fields({"system": "sys"})
    assert [preference.read(row, fields) for row in arrow] == [preference.read(row, fields) for row in rows]
    assert {preference.read(row, fields).shape for row in arrow} == {shape}


def test_preference_arrow_tool_call_arguments_lose_the_keys_arrow_added():
    arrow = arrow_shaped(PREFERENCE_MESSAGE_ROWS)
    assert arrow[0]["chosen"][0]["tool_calls"][0]["arguments"] == {"city": "Tokyo", "query": None}
    assert get_converter("preference")(arrow[0]).chosen[0]["tool_calls"] == [{"name": "weather", "arguments": {"city": "Tokyo"}}]


def test_preference_harmony_arrow_row_keeps_thinking_and_effort():
    record = get_converter("preference")(arrow_shaped(PREFERENCE_HARMONY_ROWS)[0])
    assert record == Preference(({"role": "user", "content": "7 × 8 は？"},),
                                ({"role": "assistant", "content": "56", "thinking": "九九。"},),
                                ({"role": "assistant", "content": "54"},), "high")


def test_text_arrow_rows():
    rows = [{"text": "  本文\n", "meta": {"source": "a"}}, {"text": "二つ目"}]
    arrow = arrow_shaped(rows)
    assert arrow[1]["meta"] is None
    assert converted("text", arrow) == converted("text", rows)
