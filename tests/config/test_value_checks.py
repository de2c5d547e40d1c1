"""Values the schema's types let through are refused at validation, each at its file:line:col and key:
non-finite numbers, booleans for numbers, dates off the calendar (tune.config.value_checks)."""

from __future__ import annotations

import pytest

from tune.recipe import load_recipe

VALID_HEAD = """\
model:
  name: tiny-llm-jp-4-8b
data:
  datasets:
    - path: tune:samples/demo-chat.jsonl
"""


@pytest.mark.parametrize("line, key, shown", [
    ("train:\n  epochs: .inf\n", "train.epochs", ".inf"),
    ("train:\n  weight_decay: .inf\n", "train.weight_decay", ".inf"),
    ("train:\n  max_grad_norm: .nan\n", "train.max_grad_norm", ".nan"),
    ("train:\n  lr: -.inf\n", "train.lr", "-.inf"),
    ("train:\n  max_steps: .inf\n", "train.max_steps", ".inf"),
    ("train:\n  adam_epsilon: 1e999\n", "train.adam_epsilon", ".inf (written '1e999')"),  # text to YAML 1.1, infinity to pydantic
    ("train:\n  lr: inf\n", "train.lr", ".inf (written 'inf')"),
])
def test_non_finite_numbers_are_refused_at_their_line(write_recipe, recipe_error, line, key, shown):
    message = recipe_error(write_recipe(VALID_HEAD + line))
    assert message.splitlines() == [message.splitlines()[0]]  # one line: the schema's own complaint is not repeated
    assert "recipe.yaml:7:" in message and f"{key}: not a finite number: got {shown}; expected a finite" in message


def test_non_finite_numbers_in_lists_and_method_sections_are_found(write_recipe, recipe_error):
    text = VALID_HEAD.replace("demo-chat.jsonl\n", "demo-chat.jsonl\n      weight: .inf\n") + (
        "method:\n  name: dpo\n  dpo:\n    beta: .nan\n")
    message = recipe_error(write_recipe(text))
    assert "recipe.yaml:6:15: data.datasets.0.weight: not a finite number: got .inf" in message
    assert "recipe.yaml:10:11: method.dpo.beta: not a finite number: got .nan" in message


def test_non_finite_override_is_refused():
    from tune.config import RecipeError

    with pytest.raises(RecipeError) as info:
        load_recipe("tiny/sft-lora", ["train.weight_decay=.inf"])
    assert str(info.value) == ("command-line override `train.weight_decay=.inf`: train.weight_decay: not a finite number: "
                               "got .inf; expected a finite number")


@pytest.mark.parametrize("tail, key, expected", [
    ("train:\n  max_steps: true\n", "train.max_steps", "a whole number or null"),  # pydantic alone: one step
    ("train:\n  lr: true\n", "train.lr", "a number or null"),
    ("train:\n  warmup_steps: false\n", "train.warmup_steps", "a whole number"),
    ("  max_seq_len: true\n", "data.max_seq_len", "a whole number"),
])
def test_booleans_are_not_numbers(write_recipe, recipe_error, tail, key, expected):
    message = recipe_error(write_recipe(VALID_HEAD + tail))
    assert f"{key}: wrong type: got " in message and f"(a boolean); expected {expected}" in message
    assert len(message.splitlines()) == 1


def test_booleans_stay_welcome_where_the_schema_reads_them(write_recipe):
    # `packing: true` is documented (read as `isolated`); a bool field takes a bool.
    recipe = load_recipe(write_recipe(VALID_HEAD + "  packing: true\ntrain:\n  gradient_checkpointing: true\n")).recipe
    assert recipe.data.packing == "isolated" and recipe.train.gradient_checkpointing is True


@pytest.mark.parametrize("day", ["2026-13-45", "2026-02-30", "2025-02-29", "2026-00-10"])
def test_dates_must_be_on_the_calendar(write_recipe, recipe_error, day):
    message = recipe_error(write_recipe(VALID_HEAD + f"  conversation_start_date: {day}\n"))
    assert f"recipe.yaml:6:28: data.conversation_start_date: not a calendar date: got '{day}'" in message


def test_real_dates_pass(write_recipe):
    recipe = load_recipe(write_recipe(VALID_HEAD + "  conversation_start_date: 2024-02-29\n")).recipe
    assert recipe.data.conversation_start_date == "2024-02-29"


def test_several_value_problems_are_reported_together_in_reading_order(write_recipe, recipe_error):
    text = VALID_HEAD + "  conversation_start_date: 2026-13-45\ntrain:\n  max_steps: true\n  epochs: .inf\n"
    lines = recipe_error(write_recipe(text)).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["data.conversation_start_date", "train.max_steps", "train.epochs"]


def test_whole_numbers_must_fit_in_64_bits(write_recipe, recipe_error):
    message = recipe_error(write_recipe(VALID_HEAD + "train:\n  max_steps: " + "9" * 100 + "\n"))
    assert message.endswith("recipe.yaml:7:14: train.max_steps: too large: got a whole number of 100 digits; "
                            "expected a whole number below 2**63 (about 9.2e18)")
    assert load_recipe(write_recipe(VALID_HEAD + f"train:\n  max_steps: {2**63 - 1}\n")).recipe.train.max_steps == 2**63 - 1
