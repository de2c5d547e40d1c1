"""The loss mask, audited on LLM-jp-4's OFFICIAL chat template and real tokenizer.

The oracle is independent of tune's masking: it splits the rendered Harmony text into its
`<|start|>...<|end|>`-style blocks and knows which are the assistant's. Over many random
conversations (system, developer, multi-turn, thinking on last and earlier turns, tool calls and
results): every supervised token lies inside an assistant block (its end marker included), every
character of every assistant block after its `<|start|>assistant` prompt is supervised, and no
system, developer, user or tool token is.
"""

import random
import re

import pytest

from tests.models.conftest import llmjp4_asset_dir
from tune.data.chat_masks import IGNORE_INDEX, label_conversation

BLOCK = re.compile(r"<\|start\|>(.*?)(<\|end\|>|<\|return\|>|<\|call\|>)", re.S)
WORDS = ["富士山", "東京", "ありがとう", "hello", "world", "def f(x):", "  return x", "42", "データ", "？", "!", "\n", "猫"]


@pytest.fixture(scope="module")
def official_tokenizer():
    folder = llmjp4_asset_dir()  # fails, never skips, without the vendored assets
    from tune.models.tokenizer_sentencepiece import build_fast_tokenizer_from_assets

    tokenizer = build_fast_tokenizer_from_assets(folder)
    assert tokenizer.chat_template == (folder / "chat_template.jinja").read_text()
    return tokenizer


def text(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))).strip() or "x"


def random_conversation(rng):
    messages = []
    if rng.random() < 0.5:
        messages.append({"role": rng.choice(["system", "developer"]), "content": text(rng)})
    for turn in range(rng.randint(1, 4)):
        messages.append({"role": "user", "content": text(rng)})
        if rng.random() < 0.3:
            call = {"role": "assistant", "tool_calls": [{"name": "lookup", "arguments": {"q": text(rng)}}]}
            if rng.random() < 0.5:
                call["thinking"] = text(rng)
            messages += [call, {"role": "tool", "content": text(rng)}]
        answer = {"role": "assistant", "content": text(rng)}
        if rng.random() < 0.5:
            answer["thinking"] = text(rng)
        messages.append(answer)
    return messages


def char_classes(rendered):
    """For each character: 'assistant' (must be trained), 'prompt' (the `<|start|>assistant` cue), or 'other'."""
    classes = ["other"] * len(rendered)
    for match in BLOCK.finditer(rendered):
        header = match.group(1)
        if header.startswith("assistant"):
            # the cue opening a turn is the prompt; a cue continuing one (final after analysis) is generated
            cue = match.start() if _preceded_by_assistant(rendered, match.start()) else match.start() + len("<|start|>assistant")
            for i in range(cue, match.end()):
                classes[i] = "assistant"
            for i in range(match.start(), cue):
                classes[i] = "prompt"
    return classes


@pytest.mark.parametrize("train_on", ["all", "last"])
def test_mask_properties_hold_on_the_official_template(official_tokenizer, train_on):
    rng = random.Random(7)
    kwargs = {"conversation_start_date": "2026-04-01", "reasoning_effort": "high"}
    checked = 0
    for _ in range(150):
        messages = random_conversation(rng)
        sample = label_conversation(official_tokenizer, messages, kwargs, last_turn_only=train_on == "last")
        rendered = official_tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)
        offsets = official_tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        classes = char_classes(rendered)
        last_block_start = max(m.start() for m in BLOCK.finditer(rendered) if m.group(1).startswith("assistant")
                               and not _preceded_by_assistant(rendered, m.start()))
        for (begin, end), label in zip(offsets, sample.labels):
            kinds = set(classes[begin:end]) or {classes[begin]}
            if label != IGNORE_INDEX:
                assert kinds == {"assistant"}, (rendered[begin:end], messages)
                if train_on == "last":
                    assert begin >= last_block_start
            elif kinds == {"assistant"} and (train_on == "all" or begin >= last_block_start):
                pytest.fail(f"assistant text {rendered[begin:end]!r} is not supervised in {messages}")
        checked += 1
    assert checked == 150


def _preceded_by_assistant(rendered, start):
    """True when the block at ``start`` continues an assistant turn (analysis then final, call after analysis)."""
    before = rendered[:start]
    previous = [m for m in BLOCK.finditer(before)]
    return bool(previous) and previous[-1].end() == start and previous[-1].group(1).startswith("assistant") \
        and previous[-1].group(2) == "<|end|>"


def test_thinking_of_earlier_turns_is_neither_rendered_nor_trained(official_tokenizer):
    messages = [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1", "thinking": "EARLY-THOUGHT"},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "A2", "thinking": "LATE-THOUGHT"},
    ]
    kwargs = {"conversation_start_date": "2026-04-01"}
    sample = label_conversation(official_tokenizer, messages, kwargs)
    supervised = official_tokenizer.decode([t for t, l in zip(sample.input_ids, sample.labels) if l != IGNORE_INDEX])
    assert "EARLY-THOUGHT" not in official_tokenizer.decode(sample.input_ids)
    assert "LATE-THOUGHT" in supervised and "A1" in supervised and "A2" in supervised
    assert "Q1" not in supervised and "Q2" not in supervised
