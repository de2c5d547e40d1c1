"""Converters: exact canonical output on good rows, a named reason on every kind of bad row;
reading local files; converting whole files with skip / error."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tune.data.converters import CONVERTERS, get_converter
from tune.data.records import BadRow, Conversation, Preference, Text
from tune.data.rows import UnreadableFile, read_rows, row_location
from tune.errors import UserError
from tests.data.converting import blocks, convert_dataset, system_object


def convert(name, row, fields=None):
    return get_converter(name)(row, fields)



# --- registry ---------------------------------------------------------------------------------

def test_registry_holds_the_required_converters_with_their_kinds():
    kinds = {name: c.kind for name, c in CONVERTERS.items()}
    assert kinds == {"messages": "sft", "llmjp4_sft": "sft", "sharegpt": "sft", "alpaca": "sft",
                     "preference": "preference", "text": "text"}
    assert all(c.version >= 1 and c.default_fields for c in CONVERTERS.values())


def test_default_fields_name_their_own_columns_so_partial_mappings_behave_the_same():
    for converter in CONVERTERS.values():
        assert all(logical == column for logical, column in converter.default_fields.items()), converter.name
    row = {"text": "q", "output": "a"}
    assert get_converter("alpaca").convert(row, {"instruction": "text"}) == convert("alpaca", row, {"instruction": "text"})


def test_unknown_converter_lists_the_known_names_and_the_closest():
    with pytest.raises(ValueError) as caught:
        get_converter("sharegtp")
    assert "did you mean `sharegpt`" in str(caught.value)
    assert "llmjp4_sft" in str(caught.value)


def test_field_mapping_refuses_fields_the_converter_does_not_read():
    with pytest.raises(ValueError, match="no field 'question'"):
        get_converter("alpaca").resolve_fields({"question": "q"})
    assert get_converter("alpaca").resolve_fields({"input": "context"})["input"] == "context"


def test_every_converter_names_its_shapes_the_usual_one_first():
    assert {name: c.shapes for name, c in CONVERTERS.items()} == {
        "messages": ("messages",), "llmjp4_sft": ("harmony",), "sharegpt": ("from_value", "role_content"),
        "alpaca": ("alpaca",), "preference": ("strings", "messages", "harmony"), "text": ("text",)}


@pytest.mark.parametrize("shapes", [(), ("a", "a")])
def test_a_converter_refuses_no_shape_or_a_shape_twice(shapes):
    import dataclasses

    with pytest.raises(ValueError, match="shapes"):
        dataclasses.replace(get_converter("text"), shapes=shapes)


@pytest.mark.parametrize("name, row, shape", [
    ("messages", {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}, "messages"),
    ("llmjp4_sft", {"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]},
                                 {"role": "assistant", "channel": "final", "content": [{"type": "text", "text": "a"}]}]}, "harmony"),
    ("alpaca", {"instruction": "i", "output": "o"}, "alpaca"),
    ("text", {"text": "t"}, "text"),
])
def test_single_shape_converters_report_their_shape(name, row, shape):
    converter = get_converter(name)
    converted = converter.read(row, converter.resolve_fields())
    assert converted.shape == shape and converted.record == converter(row)


# --- messages ---------------------------------------------------------------------------------

def test_messages_keeps_roles_content_thinking_and_normalises_openai_tool_calls():
    row = {"id": 7, "messages": [
        {"role": "system", "content": "簡潔に"},
        {"role": "user", "content": "東京の天気は？", "name": "alice"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Tokyo\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "晴れ"},
        {"role": "assistant", "content": "晴れです。", "thinking": "ツールの結果をそのまま伝える"},
    ]}
    assert convert("messages", row) == Conversation((
        {"role": "system", "content": "簡潔に"},
        {"role": "user", "content": "東京の天気は？"},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "weather", "arguments": {"city": "Tokyo"}}]},
        {"role": "tool", "content": "晴れ"},
        {"role": "assistant", "content": "晴れです。", "thinking": "ツールの結果をそのまま伝える"},
    ))


def test_messages_reads_a_mapped_column_system_and_reasoning_effort():
    row = {"conversations": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
           "sys": "be kind", "effort": "High"}
    fields = {"messages": "conversations", "system": "sys", "reasoning_effort": "effort"}
    assert convert("messages", row, fields) == Conversation(
        ({"role": "system", "content": "be kind"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}), "high")


def test_messages_keeps_a_non_json_string_of_arguments_as_it_is():
    row = {"messages": [{"role": "user", "content": "q"},
                        {"role": "assistant", "tool_calls": [{"name": "f", "arguments": "x=1"}]},
                        {"role": "tool", "content": "ok"}, {"role": "assistant", "content": "done"}]}
    assert convert("messages", row).messages[1]["tool_calls"] == [{"name": "f", "arguments": "x=1"}]


@pytest.mark.parametrize("row, reason, field", [
    ([1, 2], "not_an_object", "row"),
    ({"msgs": []}, "missing_field", "`messages`"),
    ({"messages": {"role": "user"}}, "wrong_type", "`messages`"),
    ({"messages": "[{"}, "invalid_json", "`messages`"),
    ({"messages": []}, "empty_conversation", "no messages"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]}, "empty_assistant", "messages[1].content"),
    ({"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}, "role_order", "messages[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}, {"role": "assistant", "content": "a"}]}, "non_string_content", "messages[0].content is a list"),
    ({"messages": [{"role": "user", "content": "q", "thinking": "t"}, {"role": "assistant", "content": "a"}]}, "thinking_not_assistant", "messages[0]"),
    ({"messages": [{"role": "bot", "content": "q"}]}, "unknown_role", "messages[0].role"),
    ({"messages": [{"role": "user", "content": "q"}, "a"]}, "not_an_object", "messages[1]"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}]}, "bad_tool_call", "messages[1].tool_calls[0]"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "e": "max"}, "bad_reasoning_effort", "`e`"),
])
def test_messages_bad_rows(row, reason, field):
    fields = {"reasoning_effort": "e"} if isinstance(row, dict) and "e" in row else None
    with pytest.raises(BadRow) as caught:
        convert("messages", row, fields)
    assert caught.value.reason == reason
    assert field in caught.value.detail


# --- llmjp4_sft -------------------------------------------------------------------------------

def test_llmjp4_merges_analysis_into_thinking_and_takes_effort_from_the_system_object():
    row = {"ID": "flan-1", "messages": [
        system_object("High"),
        {"role": "developer", "content": blocks("日本語で")},
        {"role": "user", "content": blocks("1+1は？")},
        {"role": "assistant", "channel": "analysis", "content": blocks("足し算。")},
        {"role": "assistant", "channel": "final", "content": blocks("2")},
        {"role": "user", "content": "では2+2は？"},
        {"role": "assistant", "channel": "final", "content": [{"type": "text", "text": "4"}, {"type": "text", "text": "です"}]},
    ]}
    assert convert("llmjp4_sft", row) == Conversation((
        {"role": "developer", "content": "日本語で"},
        {"role": "user", "content": "1+1は？"},
        {"role": "assistant", "content": "2", "thinking": "足し算。"},
        {"role": "user", "content": "では2+2は？"},
        {"role": "assistant", "content": "4です"},
    ), "high")


def test_llmjp4_accepts_a_bare_system_object_developer_content_and_json_string_messages():
    messages = [
        {"role": "system", "content": {"reasoning_effort": "low", "model_identity": "x"}},
        {"role": "developer", "content": [{"type": "developer_content", "instructions": "敬語で"}]},
        {"role": "user", "content": blocks("q")},
        {"role": "assistant", "content": blocks("a")},
    ]
    record = convert("llmjp4_sft", {"messages": json.dumps(messages, ensure_ascii=False)})
    assert record == Conversation(({"role": "developer", "content": "敬語で"}, {"role": "user", "content": "q"},
                                   {"role": "assistant", "content": "a"}), "low")


def test_llmjp4_text_system_message_stays_a_message():
    row = {"messages": [{"role": "system", "content": blocks("丁寧に")}, {"role": "user", "content": blocks("q")},
                        {"role": "assistant", "channel": "final", "content": blocks("a")}]}
    assert convert("llmjp4_sft", row) == Conversation(
        ({"role": "system", "content": "丁寧に"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}))


@pytest.mark.parametrize("messages, reason, field", [
    ([{"role": "user", "content": blocks("q")}, {"role": "assistant", "channel": "analysis", "content": blocks("t")}],
     "empty_assistant", "messages[1] is an analysis message"),
    ([{"role": "user", "content": blocks("q")}, {"role": "assistant", "channel": "analysis", "content": blocks("t")},
      {"role": "user", "content": blocks("q2")}, {"role": "assistant", "content": blocks("a")}],
     "empty_assistant", "messages[1]"),
    ([{"role": "user", "content": blocks("q")}, {"role": "assistant", "channel": "analysis", "content": blocks("t")},
      {"role": "assistant", "channel": "analysis", "content": blocks("t2")}, {"role": "assistant", "content": blocks("a")}],
     "role_order", "messages[2]"),
    ([{"role": "user", "content": blocks("q")}, {"role": "assistant", "channel": "commentary", "content": blocks("{}")}],
     "bad_channel", "messages[1].channel"),
    ([{"role": "user", "content": [{"type": "image", "url": "x"}]}, {"role": "assistant", "content": blocks("a")}],
     "bad_content_block", "messages[0].content[0]"),
    ([{"role": "user", "content": [{"type": "text", "text": 5}]}, {"role": "assistant", "content": blocks("a")}],
     "non_string_content", "messages[0].content[0].text"),
    ([{"role": "user", "content": 5}, {"role": "assistant", "content": blocks("a")}],
     "non_string_content", "messages[0].content"),
    ([{"role": "user"}, {"role": "assistant", "content": blocks("a")}], "missing_field", "messages[0].content"),
    ([{"content": blocks("q")}], "missing_field", "messages[0].role"),
    ([system_object("extreme"), {"role": "user", "content": blocks("q")}, {"role": "assistant", "content": blocks("a")}],
     "bad_reasoning_effort", "messages[0].content.reasoning_effort"),
    ([{"role": "user", "content": blocks("q")}, system_object(), {"role": "assistant", "content": blocks("a")}],
     "role_order", "messages[1]"),
    ([{"role": "user", "content": blocks("q"), "thinking": "t"}, {"role": "assistant", "content": blocks("a")}],
     "thinking_not_assistant", "messages[0]"),
    ([{"role": "assistant", "channel": "final", "content": blocks("a")}], "role_order", "messages[0]"),
    ([{"role": "user", "content": blocks("q")}, {"role": "assistant", "channel": "final", "content": blocks(" ")}],
     "empty_assistant", "messages[1]"),
    ([{"role": "developer", "content": [{"type": "developer_content", "instructions": "x", "tools": {"f": {}}}]},
      {"role": "user", "content": blocks("q")}, {"role": "assistant", "content": blocks("a")}],
     "bad_content_block", "declares tools"),
])
def test_llmjp4_bad_rows(messages, reason, field):
    with pytest.raises(BadRow) as caught:
        convert("llmjp4_sft", {"ID": "x", "messages": messages})
    assert caught.value.reason == reason
    assert field in caught.value.detail


# --- sharegpt ---------------------------------------------------------------------------------

def test_sharegpt_maps_speakers_system_column_and_function_calls():
    row = {"system": "You are helpful.", "mask": "User", "conversations": [
        {"from": "User", "value": "Weather in Osaka?"},
        {"from": "function_call", "value": "{\"name\": \"weather\", \"arguments\": {\"city\": \"Osaka\"}}"},
        {"from": "observation", "value": "rain"},
        {"from": "Assistant", "value": "It is raining."},
        {"from": "human", "value": "Thanks"},
        {"from": "gpt", "value": "You're welcome."},
    ]}
    assert convert("sharegpt", row, {"system": "system"}) == Conversation((
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Weather in Osaka?"},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "weather", "arguments": {"city": "Osaka"}}]},
        {"role": "tool", "content": "rain"},
        {"role": "assistant", "content": "It is raining."},
        {"role": "user", "content": "Thanks"},
        {"role": "assistant", "content": "You're welcome."},
    ))


def test_sharegpt_blank_system_column_adds_no_message():
    row = {"system": "", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    assert convert("sharegpt", row, {"system": "system"}).messages[0]["role"] == "user"


@pytest.mark.parametrize("turns, reason, field", [
    ([{"from": "narrator", "value": "x"}], "unknown_role", "conversations[0].from"),
    ([{"value": "x"}], "missing_field", "conversations[0].from"),
    ([{"from": "human"}], "missing_field", "conversations[0].value"),
    ([{"from": "human", "value": ["x"]}, {"from": "gpt", "value": "a"}], "non_string_content", "conversations[0].value"),
    ([{"from": "human", "value": "q"}, {"from": "gpt", "value": ""}], "empty_assistant", "conversations[1]"),
    ([{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}], "role_order", "conversations[0]"),
    ([{"from": "human", "value": "q"}, {"from": "function_call", "value": "weather("}], "bad_tool_call", "conversations[1].value"),
    (["q"], "not_an_object", "conversations[0]"),
])
def test_sharegpt_bad_rows(turns, reason, field):
    with pytest.raises(BadRow) as caught:
        convert("sharegpt", {"conversations": turns})
    assert caught.value.reason == reason
    assert field in caught.value.detail


def test_sharegpt_reads_role_content_turns_as_their_own_shape():
    sharegpt = get_converter("sharegpt")
    row = {"conversations": [{"role": "User", "content": "東京の天気は？"},
                             {"role": "assistant", "content": "", "tool_calls": [
                                 {"type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Tokyo\"}"}}]},
                             {"role": "tool", "content": "晴れ", "tool_call_id": "c1"},
                             {"role": "gpt", "content": "晴れです。", "thinking": "結果を伝える", "name": "bot"}]}
    converted = sharegpt.read(row, sharegpt.resolve_fields())
    assert converted.shape == "role_content"
    assert converted.record == Conversation((
        {"role": "user", "content": "東京の天気は？"},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "weather", "arguments": {"city": "Tokyo"}}]},
        {"role": "tool", "content": "晴れ"},
        {"role": "assistant", "content": "晴れです。", "thinking": "結果を伝える"},
    ))
    from_value = {"conversations": [{"from": "human", "value": "東京の天気は？"}, {"from": "gpt", "value": "晴れです。"}]}
    assert sharegpt.read(from_value, sharegpt.resolve_fields()).shape == "from_value"


def test_sharegpt_the_same_conversation_in_either_shape_is_the_same_record():
    turns = [("human", "user", "q"), ("gpt", "assistant", "a"), ("human", "user", "q2"), ("gpt", "assistant", "a2")]
    from_value = {"conversations": [{"from": f, "value": v} for f, _, v in turns], "system": "s"}
    role_content = {"conversations": [{"role": r, "content": v} for _, r, v in turns], "system": "s"}
    assert convert("sharegpt", from_value, {"system": "system"}) == convert("sharegpt", role_content, {"system": "system"})


@pytest.mark.parametrize("turns, reason, field", [
    ([{"from": "human", "value": "q"}, {"role": "assistant", "content": "a"}], "unknown_shape",
     "conversations[0] is a from/value turn but conversations[1] is a role/content turn"),
    ([{"from": "human", "value": "q", "role": "user"}, {"from": "gpt", "value": "a"}], "unknown_shape",
     "conversations[0] has both"),
    ([{"content": "q"}, {"role": "assistant", "content": "a"}], "missing_field", "conversations[0].role is missing"),
    ([{"role": "user"}, {"role": "assistant", "content": "a"}], "missing_field", "conversations[0].content is missing"),
    ([{"role": "user", "content": [{"type": "text", "text": "q"}]}, {"role": "assistant", "content": "a"}],
     "non_string_content", "conversations[0].content"),
    ([{"role": "narrator", "content": "x"}], "unknown_role", "conversations[0].role"),
    ([{"role": "user", "content": "q", "thinking": "t"}, {"role": "assistant", "content": "a"}],
     "thinking_not_assistant", "conversations[0]"),
])
def test_sharegpt_role_content_and_mixed_bad_rows(turns, reason, field):
    with pytest.raises(BadRow) as caught:
        convert("sharegpt", {"conversations": turns})
    assert caught.value.reason == reason
    assert field in caught.value.detail


# --- alpaca -----------------------------------------------------------------------------------

def test_alpaca_joins_instruction_and_input_with_a_blank_line():
    assert convert("alpaca", {"instruction": "要約して", "input": "長い文章", "output": "短い文章"}) == Conversation(
        ({"role": "user", "content": "要約して\n\n長い文章"}, {"role": "assistant", "content": "短い文章"}))


@pytest.mark.parametrize("row", [
    {"instruction": "挨拶して", "input": "", "output": "こんにちは"},
    {"instruction": "挨拶して", "input": "  \n", "output": "こんにちは"},
    {"instruction": "挨拶して", "input": None, "output": "こんにちは"},
    {"instruction": "挨拶して", "output": "こんにちは"},
])
def test_alpaca_empty_or_absent_input_gives_the_instruction_alone(row):
    assert convert("alpaca", row) == Conversation(
        ({"role": "user", "content": "挨拶して"}, {"role": "assistant", "content": "こんにちは"}))


def test_alpaca_reads_mapped_columns_and_system():
    row = {"instruction": "i", "context": "c", "response": "r", "sys": "s"}
    record = convert("alpaca", row, {"input": "context", "output": "response", "system": "sys"})
    assert record.messages == ({"role": "system", "content": "s"}, {"role": "user", "content": "i\n\nc"},
                               {"role": "assistant", "content": "r"})


@pytest.mark.parametrize("row, reason, field", [
    ({"input": "x", "output": "o"}, "missing_field", "`instruction`"),
    ({"instruction": "i", "output": None}, "missing_field", "`output`"),
    ({"instruction": "i", "input": ["x"], "output": "o"}, "non_string_content", "`input`"),
    ({"instruction": 3, "output": "o"}, "non_string_content", "`instruction`"),
    ({"instruction": "i", "output": " "}, "empty_assistant", "`output`"),
    ({"instruction": "", "input": "x", "output": "o"}, "empty_user", "`instruction`"),
    ("instruction", "not_an_object", "row"),
])
def test_alpaca_bad_rows(row, reason, field):
    with pytest.raises(BadRow) as caught:
        convert("alpaca", row)
    assert caught.value.reason == reason
    assert field in caught.value.detail


# --- preference -------------------------------------------------------------------------------

def test_preference_from_strings():
    assert convert("preference", {"prompt": "p", "chosen": "good", "rejected": "bad"}) == Preference(
        ({"role": "user", "content": "p"},), ({"role": "assistant", "content": "good"},), ({"role": "assistant", "content": "bad"},))


def test_preference_from_message_lists_and_mapped_columns():
    row = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q1"},
                        {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}],
           "chosen_response": [{"role": "assistant", "content": "good", "thinking": "t"}],
           "rejected_response": "bad"}
    record = convert("preference", row, {"prompt": "messages", "chosen": "chosen_response", "rejected": "rejected_response"})
    assert record == Preference(
        ({"role": "system", "content": "s"}, {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
         {"role": "user", "content": "q2"}),
        ({"role": "assistant", "content": "good", "thinking": "t"},),
        ({"role": "assistant", "content": "bad"},))


@pytest.mark.parametrize("row, reason, field", [
    ({"chosen": "a", "rejected": "b"}, "missing_field", "`prompt`"),
    ({"prompt": "p", "chosen": "a"}, "missing_field", "`rejected`"),
    ({"prompt": 3, "chosen": "a", "rejected": "b"}, "wrong_type", "prompt"),
    ({"prompt": "p", "chosen": "same", "rejected": "same"}, "identical_pair", "identical"),
    ({"prompt": "p", "chosen": "", "rejected": "b"}, "empty_assistant", "chosen"),
    ({"prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "chosen": "x", "rejected": "y"},
     "role_order", "prompt[1]"),
    ({"prompt": "p", "chosen": [{"role": "user", "content": "a"}], "rejected": "b"}, "role_order", "chosen[0]"),
    ({"prompt": "p", "chosen": [{"role": "assistant", "content": ["a"]}], "rejected": "b"}, "non_string_content", "chosen[0].content"),
    ({"prompt": [{"role": "user", "content": "q", "thinking": "t"}], "chosen": "a", "rejected": "b"}, "thinking_not_assistant", "prompt[0]"),
])
def test_preference_bad_rows(row, reason, field):
    with pytest.raises(BadRow) as caught:
        convert("preference", row)
    assert caught.value.reason == reason
    assert field in caught.value.detail


def harmony_answer(thinking, final):
    return [{"role": "assistant", "channel": "analysis", "content": blocks(thinking)},
            {"role": "assistant", "channel": "final", "content": blocks(final)}]


def test_preference_reads_harmony_parts_keeping_thinking_and_the_prompts_reasoning_effort():
    row = {"messages": [system_object("High"), {"role": "user", "content": blocks("1+1は？")},
                        {"role": "assistant", "channel": "analysis", "content": blocks("足す。")},
                        {"role": "assistant", "channel": "final", "content": blocks("2")},
                        {"role": "user", "content": blocks("2+2は？")}],
           "chosen_response": harmony_answer("足し算。", "4"),
           "rejected_response": [{"role": "assistant", "content": [{"type": "text", "text": "5"}, {"type": "text", "text": "です"}]}]}
    preference = get_converter("preference")
    fields = preference.resolve_fields({"prompt": "messages", "chosen": "chosen_response", "rejected": "rejected_response"})
    converted = preference.read(row, fields)
    assert converted.shape == "harmony"
    assert converted.record == Preference(
        ({"role": "user", "content": "1+1は？"}, {"role": "assistant", "content": "2", "thinking": "足す。"},
         {"role": "user", "content": "2+2は？"}),
        ({"role": "assistant", "content": "4", "thinking": "足し算。"},),
        ({"role": "assistant", "content": "5です"},),
        "high")


@pytest.mark.parametrize("row, shape", [
    ({"prompt": "p", "chosen": "a", "rejected": "b"}, "strings"),
    ({"prompt": [{"role": "user", "content": "p"}], "chosen": "a", "rejected": "b"}, "strings"),
    ({"prompt": "p", "chosen": [{"role": "assistant", "content": "a"}], "rejected": "b"}, "messages"),
    ({"prompt": "p", "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}, "messages"),
    ({"prompt": "p", "chosen": harmony_answer("t", "a"), "rejected": "b"}, "harmony"),
    ({"prompt": [{"role": "user", "content": blocks("p")}], "chosen": "a", "rejected": "b"}, "harmony"),
])
def test_preference_shape_is_detected_per_row(row, shape):
    preference = get_converter("preference")
    assert preference.read(row, preference.resolve_fields()).shape == shape


@pytest.mark.parametrize("row, reason, field", [
    ({"prompt": "p", "chosen": [{"role": "assistant", "channel": "analysis", "content": blocks("t")}], "rejected": "b"},
     "empty_assistant", "chosen[0] is an analysis message"),
    ({"prompt": "p", "chosen": [{"role": "assistant", "channel": "commentary", "content": blocks("{}")}], "rejected": "b"},
     "bad_channel", "chosen[0].channel"),
    ({"prompt": "p", "chosen": [system_object(), {"role": "assistant", "content": blocks("a")}], "rejected": "b"},
     "role_order", "chosen[0] is a system message"),
    ({"prompt": "p", "chosen": "a", "rejected": [{"role": "assistant", "content": blocks("b")},
                                                   {"role": "system", "content": {"model_identity": "x"}}]},
     "role_order", "rejected[1] is a system message"),
    ({"prompt": [{"role": "user", "content": [{"type": "image", "url": "x"}]}], "chosen": "a", "rejected": "b"},
     "bad_content_block", "prompt[0].content[0]"),
    ({"prompt": [system_object("max"), {"role": "user", "content": blocks("q")}], "chosen": "a", "rejected": "b"},
     "bad_reasoning_effort", "prompt[0].content.reasoning_effort"),
    ({"prompt": "p", "chosen": harmony_answer("t", "same"), "rejected": harmony_answer("t", "same")},
     "identical_pair", "identical"),
    ({"prompt": "p", "chosen": [{"role": "user", "channel": "final", "content": blocks("a")}], "rejected": "b"},
     "role_order", "chosen[0]"),
])
def test_preference_harmony_bad_rows(row, reason, field):
    with pytest.raises(BadRow) as caught:
        convert("preference", row)
    assert caught.value.reason == reason
    assert field in caught.value.detail


# --- text -------------------------------------------------------------------------------------

def test_text_is_kept_exactly():
    assert convert("text", {"text": "  本文\n"}) == Text("  本文\n")
    assert convert("text", {"body": "x"}, {"text": "body"}) == Text("x")


@pytest.mark.parametrize("row, reason", [({}, "missing_field"), ({"text": 1}, "non_string_content"),
                                         ({"text": "\n "}, "empty_text"), (None, "not_an_object")])
def test_text_bad_rows(row, reason):
    with pytest.raises(BadRow) as caught:
        convert("text", row)
    assert caught.value.reason == reason
    assert ("text" in caught.value.detail) or reason == "not_an_object"


# --- reading files ----------------------------------------------------------------------------

def test_read_rows_jsonl_yields_a_bad_row_at_the_broken_line_and_skips_blank_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n\n{"a": \n[1, 2]\n{"a": 4}\n', encoding="utf-8")
    rows = list(read_rows(path))
    assert [index for index, _ in rows] == [0, 2, 3, 4]
    assert rows[0][1] == {"a": 1} and rows[3][1] == {"a": 4}
    assert rows[1][1].reason == "invalid_json" and "line 3" in rows[1][1].detail
    assert rows[2][1].reason == "not_an_object" and "line 4" in rows[2][1].detail
    assert row_location(path, 2) == f"{path}:line 3"


def test_read_rows_json_list(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"a": 1}, "x", {"a": 2}]), encoding="utf-8")
    rows = list(read_rows(path))
    assert rows[0] == (0, {"a": 1}) and rows[2] == (2, {"a": 2})
    assert rows[1][1].reason == "not_an_object"
    assert row_location(path, 1) == f"{path}:row 1"


def test_read_rows_json_refuses_a_non_list(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('{"a": 1}', encoding="utf-8")
    with pytest.raises(UnreadableFile, match="list of objects"):
        read_rows(path)


def test_read_rows_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    table = pa.table({"instruction": ["i1", "i2", "i3"], "input": ["", "x", None], "output": ["o1", "o2", "o3"]})
    pq.write_table(table, path, row_group_size=2)
    rows = list(read_rows(path))
    assert rows == [(0, {"instruction": "i1", "input": "", "output": "o1"}),
                    (1, {"instruction": "i2", "input": "x", "output": "o2"}),
                    (2, {"instruction": "i3", "input": None, "output": "o3"})]


def test_read_rows_refuses_unknown_extensions_and_missing_files(tmp_path):
    with pytest.raises(ValueError) as caught:
        read_rows(tmp_path / "data.csv")
    assert "data.csv" in str(caught.value) and ".jsonl, .json, .parquet" in str(caught.value)
    assert isinstance(caught.value, UserError)
    with pytest.raises(UnreadableFile, match="no such file"):
        read_rows(tmp_path / "absent.jsonl")


# --- converting files -------------------------------------------------------------------------

@pytest.fixture
def alpaca_file(tmp_path):
    path = tmp_path / "a.jsonl"
    lines = [
        {"instruction": "i", "input": "", "output": "o"},
        {"instruction": "i", "input": ""},
        "not json",
        {"instruction": "i", "output": ""},
        {"instruction": "i", "output": None},
        {"instruction": "i2", "output": "o2"},
    ]
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


def test_converting_skips_counts_and_reports_bad_rows(alpaca_file, tmp_path):
    records, stats = convert_dataset({"path": str(alpaca_file), "format": "alpaca"}, tmp_path)
    rows = [json.loads(line) for line in alpaca_file.read_text().splitlines() if line.startswith("{")]
    assert records == [convert("alpaca", rows[0]), convert("alpaca", rows[4])]  # lines 1 and 6
    assert stats.rows_read == 6
    assert dict(stats.bad_rows) == {"missing_field": 2, "invalid_json": 1, "empty_assistant": 1}
    assert sum(stats.bad_rows.values()) == 4
    assert stats.bad_examples["missing_field"][0] == f"{alpaca_file}:line 2: `output` is missing"
    assert len(stats.bad_examples["missing_field"]) == 2
    from tune.data.report import DataReport

    lines = DataReport([stats]).lines()
    assert f"  bad rows (missing_field): 2, e.g. {alpaca_file}:line 2: `output` is missing" in lines


def test_converting_in_error_mode_stops_at_the_first_bad_row_with_its_location(alpaca_file, tmp_path):
    with pytest.raises(UserError) as caught:
        convert_dataset({"path": str(alpaca_file), "format": "alpaca"}, tmp_path, on_bad_row="error")
    assert str(caught.value).startswith(f"{alpaca_file}:line 2: bad row (missing_field): `output` is missing")


def test_converting_counts_rows_per_shape_and_the_report_shows_an_unusual_mix(tmp_path):
    from tune.data.report import DataReport

    path = tmp_path / "chat.jsonl"
    rows = [{"conversations": [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": f"a{i}"}]} for i in range(2)]
    rows += [{"conversations": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
             {"conversations": [{"from": "human", "value": "q"}, {"role": "assistant", "content": "a"}]}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    records, stats = convert_dataset({"path": str(path), "format": "sharegpt"}, tmp_path / "out")
    assert len(records) == 3
    assert dict(stats.shapes) == {"from_value": 2, "role_content": 1} and stats.default_shape == "from_value"
    assert dict(stats.bad_rows) == {"unknown_shape": 1}
    assert stats.bad_examples["unknown_shape"][0].startswith(f"{path}:line 4: conversations[0] is a from/value turn")
    report = DataReport([stats])
    assert "  rows by shape: from_value 2, role_content 1" in report.lines()
    again = DataReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.datasets[0].shapes == stats.shapes and again.datasets[0].default_shape == "from_value"
    assert again.lines() == report.lines()


def test_the_report_lists_shapes_only_when_rows_are_not_all_in_the_usual_one(tmp_path):
    from tune.data.report import DataReport

    usual = tmp_path / "usual.jsonl"
    usual.write_text(json.dumps({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}) + "\n")
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"conversations": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}) + "\n")
    lines = DataReport([convert_dataset({"path": str(f), "format": "sharegpt"}, tmp_path / f.stem)[1] for f in (usual, other)]).lines()
    assert [line for line in lines if "by shape" in line] == ["  rows by shape: role_content 1"]


def test_an_unknown_bad_row_policy_is_refused():
    from pydantic import ValidationError

    from tune.config.schema import DataSection

    with pytest.raises(ValidationError, match="on_bad_row"):
        DataSection(datasets=[{"path": "x.jsonl"}], on_bad_row="ignore")
