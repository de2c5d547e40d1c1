"""The project's Harmony template renders byte for byte like LLM-jp-4's official template.

Both templates are rendered through ``tokenizer.apply_chat_template`` (transformers' own jinja
environment, with its ``strftime_now``, ``raise_exception`` and ``tojson``) for conversations
without tool definitions, with every keyword the official template reads. The official file
is vendored in tests/assets/llmjp4-tokenizer (see conftest.py); the comparisons never skip.
"""

from __future__ import annotations

import datetime
import itertools

import pytest

from tune.models.tokenizer_tiny import load_template_text

WEATHER_CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "東京", "unit": "celsius"}}}
SEARCH_CALL = {"type": "function", "function": {"name": "search", "arguments": {"query": "LLM-jp-4 \"tokenizer\"", "top_k": 3}}}

CONVERSATIONS = {
    "user-only": [{"role": "user", "content": "こんにちは"}],
    "user-assistant": [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello. How can I help?"}],
    "system": [
        {"role": "system", "content": "あなたは親切なアシスタントです。"},
        {"role": "user", "content": "自己紹介して"},
        {"role": "assistant", "content": "LLM-jp-4です。"},
    ],
    "developer-multiline": [
        {"role": "developer", "content": "# Rules\n- answer briefly\n- use 日本語\n\nThat's all."},
        {"role": "user", "content": "ok?"},
        {"role": "assistant", "content": "はい。"},
    ],
    "system-empty": [{"role": "system", "content": ""}, {"role": "user", "content": "empty system"}],
    "system-only": [{"role": "system", "content": "Only instructions, no turns."}],
    "multi-turn": [
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "3+3?"},
        {"role": "assistant", "content": "6"},
    ],
    "thinking-every-turn": [
        {"role": "system", "content": "Think first."},
        {"role": "user", "content": "空はなぜ青い？"},
        {"role": "assistant", "thinking": "レイリー散乱のこと。", "content": "短い波長の光が散乱されるからです。"},
        {"role": "user", "content": "夕焼けは？"},
        {"role": "assistant", "thinking": "光の通り道が長い。", "content": "青い光が途中で散乱され、赤が残るからです。"},
    ],
    "thinking-earlier-turn-only": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "thinking": "dropped later", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
    ],
    "thinking-empty-string": [{"role": "user", "content": "q"}, {"role": "assistant", "thinking": "", "content": "a"}],
    "ends-with-user": [
        {"role": "user", "content": "first"},
        {"role": "assistant", "thinking": "not shown", "content": "reply"},
        {"role": "user", "content": "second"},
    ],
    "tool-call-thinking-then-final": [
        {"role": "user", "content": "東京の天気は？"},
        {"role": "assistant", "thinking": "天気を調べる必要がある。", "tool_calls": [WEATHER_CALL]},
        {"role": "tool", "content": {"temperature": 21.5, "sky": "晴れ"}},
        {"role": "assistant", "content": "東京は晴れ、21.5度です。"},
    ],
    "tool-call-content-analysis-no-final": [
        {"role": "user", "content": "Search it."},
        {"role": "assistant", "content": "I will search.", "tool_calls": [SEARCH_CALL]},
        {"role": "tool", "content": "3 results"},
    ],
    "tool-call-bare": [
        {"role": "user", "content": "weather"},
        {"role": "assistant", "tool_calls": [WEATHER_CALL]},
        {"role": "tool", "content": "sunny"},
        {"role": "assistant", "content": "It is sunny."},
    ],
    "tool-call-flat-string-args-content-type": [
        {"role": "user", "content": "run"},
        {"role": "assistant", "tool_calls": [{"name": "python", "arguments": '{"code": "print(1)"}', "content_type": "code"}]},
        {"role": "tool", "content": "1\n"},
    ],
    "two-calls-in-a-row": [
        {"role": "user", "content": "Compare Tokyo and Osaka."},
        {"role": "assistant", "thinking": "first Tokyo", "tool_calls": [WEATHER_CALL]},
        {"role": "tool", "content": {"city": "東京", "t": 20}},
        {"role": "assistant", "thinking": "then Osaka", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "大阪"}}}]},
        {"role": "tool", "content": {"city": "大阪", "t": 23}},
        {"role": "assistant", "thinking": "Osaka is warmer.", "content": "大阪の方が3度高いです。"},
    ],
    "ends-with-tool-call": [
        {"role": "user", "content": "look it up"},
        {"role": "assistant", "thinking": "calling", "tool_calls": [SEARCH_CALL]},
    ],
    "call-empty-content-with-thinking": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "", "thinking": "reasoning only", "tool_calls": [SEARCH_CALL]},
        {"role": "tool", "content": ["a", 1, None, True]},
    ],
    # transformers drops keys whose value is None (OpenAI style content=None), so this renders.
    "call-with-content-none": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL]},
        {"role": "tool", "content": "r"},
    ],
    "several-tool-calls-first-rendered": [
        {"role": "user", "content": "both"},
        {"role": "assistant", "tool_calls": [WEATHER_CALL, SEARCH_CALL]},
        {"role": "tool", "content": "ok"},
        {"role": "assistant", "content": "done"},
    ],
    "unicode-and-escapes": [
        {"role": "user", "content": "Quote \"this\" and a back\\slash, tab\t, emoji 😀, 改行\n二行目"},
        {"role": "assistant", "thinking": "「引用」と😀", "content": "<b>ok</b> & done\n"},
    ],
    "empty-contents": [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}],
    "unknown-role-and-late-system-skipped": [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "late system message"},
        {"role": "ipython", "content": "ignored"},
        {"role": "assistant", "content": "hello"},
    ],
    "channel-word-without-full-tag": [
        {"role": "user", "content": "<|channel|>final<|message|> in a user message is fine"},
        {"role": "assistant", "content": "mentions <|channel|>commentary only"},
    ],
    "structured-system-content": [
        {"role": "system", "content": {"model_identity": "x", "reasoning_effort": "high"}},
        {"role": "user", "content": "dict system content is printed as is"},
    ],
    "developer-then-system": [
        {"role": "developer", "content": "dev"},
        {"role": "system", "content": "second leading message is skipped"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
    ],
    "long-japanese": [
        {"role": "user", "content": "日本語の長い質問です。" * 20},
        {"role": "assistant", "thinking": "考える。" * 10, "content": "長い答えです。" * 15},
    ],
}

INVALID = {
    "final-tag-in-content": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x<|channel|>final<|message|>y"}],
    "analysis-tag-in-thinking": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "thinking": "<|channel|>analysis<|message|>t", "content": "a"},
    ],
    "analysis-tag-in-earlier-content": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "<|channel|>analysis<|message|>"},
        {"role": "user", "content": "q2"},
    ],
    "tool-without-call": [{"role": "user", "content": "q"}, {"role": "tool", "content": "result"}],
    "tool-after-final-answer": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "tool_calls": [WEATHER_CALL]},
        {"role": "tool", "content": "r"},
        {"role": "assistant", "content": "answer"},
        {"role": "tool", "content": "late result"},
    ],
    "call-with-content-and-thinking": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "c", "thinking": "t", "tool_calls": [WEATHER_CALL]},
    ],
    "empty-tool-calls": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": []}],
    "user-without-content": [{"role": "user"}],
    "assistant-content-not-text": [{"role": "user", "content": "q"}, {"role": "assistant", "content": 42}],
    "no-messages": [],
}

PINNED = {"conversation_start_date": "2026-04-01"}


@pytest.fixture(scope="module")
def render(tiny_tokenizer):
    def render(template: str, conversation, **kwargs) -> str:
        return tiny_tokenizer.apply_chat_template(conversation, chat_template=template, tokenize=False, **kwargs)

    return render


@pytest.fixture(scope="module")
def project_template() -> str:
    return load_template_text()


@pytest.mark.parametrize("name", list(CONVERSATIONS))
def test_renders_like_the_official_template(name, render, official_template, project_template):
    conversation = CONVERSATIONS[name]
    for effort, generation_prompt in itertools.product(["low", "medium", "high"], [False, True]):
        kwargs = dict(PINNED, reasoning_effort=effort, add_generation_prompt=generation_prompt)
        expected = render(official_template, conversation, **kwargs)
        assert render(project_template, conversation, **kwargs) == expected, (effort, generation_prompt)
        assert f"Reasoning: {effort}\n" in expected and "Current date: 2026-04-01\n" in expected


@pytest.mark.parametrize("name", ["user-only", "thinking-every-turn", "tool-call-thinking-then-final"])
def test_defaults_and_overrides_render_alike(name, render, official_template, project_template):
    conversation = CONVERSATIONS[name]
    variants = [
        {},  # today's date from strftime_now, reasoning medium, default identity and cutoff
        {"add_generation_prompt": True},
        {"model_identity": "You are a tiny test model.", "knowledge_cutoff": "2024-06", **PINNED},
        {"model_identity": "あなたはテスト用の小さなモデルです。", "reasoning_effort": "high"},
    ]
    for kwargs in variants:
        assert render(project_template, conversation, **kwargs) == render(official_template, conversation, **kwargs), kwargs
    before = datetime.date.today().strftime("%Y-%m-%d")
    unpinned = render(project_template, conversation)
    after = datetime.date.today().strftime("%Y-%m-%d")  # (a render across midnight sees either)
    assert f"Current date: {before}\n" in unpinned or f"Current date: {after}\n" in unpinned
    assert unpinned.startswith("<|start|>system<|message|>You are LLM-jp-4, a large language model trained by LLM-jp.\n")
    assert "Knowledge cutoff: 2025-12\n" in unpinned and "Reasoning: medium\n" in unpinned


def test_what_the_rendered_text_looks_like(render, project_template):
    # Spot-check the format (LLM-jp-4's model card / shared/docs/llmjp4.md), not just equality.
    text = render(project_template, CONVERSATIONS["tool-call-thinking-then-final"], **PINNED, reasoning_effort="high")
    assert text == (
        "<|start|>system<|message|>You are LLM-jp-4, a large language model trained by LLM-jp.\n"
        "Knowledge cutoff: 2025-12\nCurrent date: 2026-04-01\n\nReasoning: high\n\n"
        "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>"
        "<|start|>user<|message|>東京の天気は？<|end|>"
        '<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{"city": "東京", "unit": "celsius"}<|call|>'
        '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{"temperature": 21.5, "sky": "晴れ"}<|end|>'
        "<|start|>assistant<|channel|>final<|message|>東京は晴れ、21.5度です。<|return|>"
    )
    prompt = render(project_template, CONVERSATIONS["system"][:2], **PINNED, add_generation_prompt=True)
    assert "<|start|>developer<|message|># Instructions\n\nあなたは親切なアシスタントです。\n\n<|end|>" in prompt
    assert prompt.endswith("<|start|>user<|message|>自己紹介して<|end|><|start|>assistant")


@pytest.mark.parametrize("name", list(INVALID))
def test_raises_on_the_same_invalid_conversations(name, render, official_template, project_template):
    conversation = INVALID[name]
    with pytest.raises(Exception):
        render(official_template, conversation, **PINNED)
    with pytest.raises(Exception):
        render(project_template, conversation, **PINNED)


def test_tool_definitions_are_refused_not_rendered_differently(render, project_template):
    conversation = CONVERSATIONS["user-only"]
    tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}}}
    with pytest.raises(Exception, match="does not render tool definitions"):
        render(project_template, conversation, tools=[tool])
    with pytest.raises(Exception, match="does not render tool definitions"):
        render(project_template, conversation, builtin_tools=["python"])


def test_template_is_the_projects_own_file(official_template, project_template):
    assert project_template != official_template
    assert "Not supported: tool definitions. Pass none" in project_template  # documented in its header
    assert len(project_template) < len(official_template) / 2
