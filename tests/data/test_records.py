"""Canonical records: the conversation / preference / text rules, and the duplicate key."""

import hashlib
import json

import pytest

from tune.data.records import (
    BAD_ROW_REASONS,
    BadRow,
    Conversation,
    Preference,
    Text,
    check_conversation,
    check_preference,
    check_text,
    record_key,
    record_kind,
)

U = {"role": "user", "content": "質問"}
A = {"role": "assistant", "content": "回答"}


@pytest.mark.parametrize("messages", [
    [U, A],
    [{"role": "system", "content": "丁寧に"}, U, A],
    [{"role": "developer", "content": "be brief"}, U, A, U, A],
    [U, {"role": "assistant", "content": "答え", "thinking": "考え"}],
    [U, {"role": "assistant", "content": "", "tool_calls": [{"name": "weather", "arguments": {"city": "Tokyo"}}]},
     {"role": "tool", "content": "{\"temp\": 20}"}, {"role": "assistant", "content": "20度です"}],
    [U, {"role": "assistant", "content": "", "tool_calls": [{"name": "a", "arguments": "{}"}]},
     {"role": "tool", "content": "x"}, {"role": "tool", "content": "y"}, A],
    [U, U, A],
])
def test_valid_conversations_pass(messages):
    check_conversation(messages)


@pytest.mark.parametrize("messages, reason, field", [
    ("not a list", "wrong_type", "messages"),
    ([], "empty_conversation", "no messages"),
    (["hi", A], "not_an_object", "messages[0]"),
    ([{"content": "x"}, A], "missing_field", "messages[0].role"),
    ([{"role": "human", "content": "x"}, A], "unknown_role", "messages[0].role"),
    ([U, {"role": "assistant"}], "missing_field", "messages[1].content"),
    ([U, {"role": "assistant", "content": ["block"]}], "non_string_content", "messages[1].content is a list"),
    ([U, {"role": "assistant", "content": 3}], "non_string_content", "messages[1].content is a number"),
    ([{"role": "user", "content": "q", "thinking": "t"}, A], "thinking_not_assistant", "messages[0]"),
    ([U, {"role": "assistant", "content": "a", "thinking": ["t"]}], "non_string_content", "messages[1].thinking"),
    ([{"role": "user", "content": "q", "tool_calls": [{"name": "f", "arguments": {}}]}, A], "tool_calls_not_assistant", "messages[0]"),
    ([U, {"role": "assistant", "content": "", "tool_calls": [{"arguments": {}}]}], "bad_tool_call", "messages[1].tool_calls[0].name"),
    ([U, {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": 3}]}], "bad_tool_call", "messages[1].tool_calls[0].arguments"),
    ([U, {"role": "assistant", "content": "", "tool_calls": []}], "bad_tool_call", "messages[1].tool_calls"),
    ([U, {"role": "system", "content": "late"}, A], "role_order", "messages[1]"),
    ([A, U, A], "role_order", "messages[0]"),
    ([{"role": "system", "content": "s"}, A], "role_order", "messages[1]"),
    ([U, {"role": "tool", "content": "r"}, A], "role_order", "messages[1] is a tool message"),
    ([U, A, U], "role_order", "messages[2]"),
    ([{"role": "system", "content": "s"}], "no_assistant", "only a system"),
    ([U], "no_assistant", "no assistant"),
    ([{"role": "user", "content": "  "}, A], "empty_user", "messages[0].content"),
    ([U, {"role": "assistant", "content": "\n"}], "empty_assistant", "messages[1].content"),
    ([U, {"role": "assistant", "content": "", "thinking": "only thoughts"}], "empty_assistant", "messages[1]"),
])
def test_malformed_conversations_name_reason_and_field(messages, reason, field):
    with pytest.raises(BadRow) as caught:
        check_conversation(messages)
    assert caught.value.reason == reason
    assert field in caught.value.detail


def test_where_labels_name_the_source_field():
    with pytest.raises(BadRow) as caught:
        check_conversation([U, {"role": "assistant", "content": 1}], where=["conversations[0]", "conversations[1]"])
    assert caught.value.detail.startswith("conversations[1].content")


def test_bad_row_refuses_unknown_reasons_and_documents_its_keys():
    with pytest.raises(ValueError):
        BadRow("oops", "detail")
    for reason in ("missing_field", "empty_assistant", "role_order", "non_string_content",
                   "thinking_not_assistant", "unknown_role", "not_an_object", "invalid_json", "empty_text"):
        assert reason in BAD_ROW_REASONS


def test_valid_preference_passes():
    check_preference([{"role": "system", "content": "s"}, U], [A], [{"role": "assistant", "content": "別の回答"}])
    check_preference([U, A, U], [{"role": "assistant", "content": "x", "thinking": "t"}], [{"role": "assistant", "content": "y"}])


@pytest.mark.parametrize("prompt, chosen, rejected, reason, field", [
    ([], [A], [A], "empty_conversation", "prompt"),
    ([U], [], [A], "missing_field", "chosen"),
    ([U, A], [A], [{"role": "assistant", "content": "b"}], "role_order", "prompt[1]"),
    ([U], [U], [A], "role_order", "chosen[0]"),
    ([U], [A], [{"role": "assistant", "content": ""}], "empty_assistant", "rejected[0]"),
    ([U], [A], [dict(A)], "identical_pair", "identical"),
    ([{"role": "assistant", "content": "a"}, U], [A], [{"role": "assistant", "content": "b"}], "role_order", "prompt[0]"),
])
def test_malformed_preferences(prompt, chosen, rejected, reason, field):
    with pytest.raises(BadRow) as caught:
        check_preference(prompt, chosen, rejected)
    assert caught.value.reason == reason
    assert field in caught.value.detail


@pytest.mark.parametrize("value, reason", [(None, "missing_field"), (["a"], "non_string_content"), (" \n", "empty_text")])
def test_malformed_text(value, reason):
    with pytest.raises(BadRow) as caught:
        check_text(value)
    assert caught.value.reason == reason
    assert "text" in caught.value.detail


def test_record_key_is_sha256_of_canonical_json():
    record = Conversation(({"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}), "high")
    canonical = json.dumps({"kind": "sft", "messages": list(record.messages), "reasoning_effort": "high"},
                           ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert record_key(record) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_record_key_ignores_key_order_and_separates_content_and_kinds():
    a = Conversation(({"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}))
    b = Conversation(({"content": "q", "role": "user"}, {"content": "a", "role": "assistant"}))
    assert record_key(a) == record_key(b)
    assert record_key(a) != record_key(Conversation(a.messages, "low"))
    assert record_key(a) != record_key(Conversation(({"role": "user", "content": "q"}, {"role": "assistant", "content": "b"})))
    assert record_key(Text("x")) != record_key(Text("y"))
    pref = Preference((U,), (A,), ({"role": "assistant", "content": "z"},))
    assert len({record_key(a), record_key(Text("q")), record_key(pref)}) == 3
    assert [record_kind(r) for r in (a, pref, Text("q"))] == ["sft", "preference", "text"]


def test_record_key_refuses_non_records():
    with pytest.raises(TypeError):
        record_key({"messages": []})
