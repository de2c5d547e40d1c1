"""Checks at validation that used to pass and fail (or mislead) later: `model.path` / `revision` where
nothing reads them, `fields` the converter cannot map, `eval_steps` with nothing held out."""

from __future__ import annotations

import pytest

from tune.recipe import load_recipe

DATA = """\
data:
  datasets:
    - path: tune:samples/demo-chat.jsonl
"""


@pytest.mark.parametrize("key", ["path", "revision"])
def test_a_tiny_twin_refuses_a_checkpoint_path_or_revision_it_would_ignore(write_recipe, recipe_error, key):
    message = recipe_error(write_recipe(f"model:\n  name: tiny-llm-jp-4-8b\n  {key}: somewhere\n" + DATA))
    assert f"recipe.yaml:3:{len(key) + 5}: model.{key}: would be ignored: tiny-llm-jp-4-8b is a tiny twin, built locally" in message


def test_a_local_checkpoint_name_refuses_a_second_folder(write_recipe, recipe_error, tmp_path):
    (tmp_path / "ckpt").mkdir()
    message = recipe_error(write_recipe("model:\n  name: ckpt\n  path: other\n" + DATA))
    assert f"recipe.yaml:3:9: model.path: model.name already names the local checkpoint {tmp_path / 'ckpt'}" in message


def test_a_real_preset_keeps_its_local_copy(write_recipe):
    model = load_recipe(write_recipe("model:\n  name: llm-jp-4-8b\n  path: ckpt\n" + DATA)).recipe.model
    assert model.path.endswith("/ckpt")


def test_fields_naming_no_field_of_the_converter_are_refused_at_validation(write_recipe, recipe_error):
    text = """\
    model: {name: tiny-llm-jp-4-8b}
    data:
      datasets:
        - path: tune:samples/demo-chat.jsonl
          format: alpaca
          fields: {instruction: question, outpt: answer}
        - card: oasst2-33k-ja
          use: samples
          fields:
            messages: turns
    """
    lines = recipe_error(write_recipe(text)).splitlines()
    assert [line.split("recipe.yaml:")[1] for line in lines] == [
        "6:39: data.datasets.0.fields.outpt: converter `alpaca` reads no field 'outpt'; expected a field it reads, "
        "mapped to a column name: instruction, input, output, system (did you mean 'output'?)",
        "10:9: data.datasets.1.fields.messages: converter `sharegpt` reads no field 'messages' (the converter of card "
        "'oasst2-33k-ja'); expected a field it reads, mapped to a column name: conversations, system",
    ]


def test_fields_with_an_empty_column_are_refused(write_recipe, recipe_error):
    message = recipe_error(write_recipe("model: {name: tiny-llm-jp-4-8b}\n" + DATA + "      fields: {messages: ''}\n"))
    assert "recipe.yaml:5:26: data.datasets.0.fields.messages: empty column name" in message


def test_fields_the_converter_reads_pass(write_recipe):
    recipe = load_recipe(write_recipe("model: {name: tiny-llm-jp-4-8b}\n" + DATA + "      fields: {messages: turns}\n")).recipe
    assert recipe.data.datasets[0].fields == {"messages": "turns"}


@pytest.mark.parametrize("held_out", ["eval_fraction: 0", "eval_max_rows: 0"])
def test_eval_steps_with_nothing_held_out_is_refused(write_recipe, recipe_error, held_out):
    text = "model: {name: tiny-llm-jp-4-8b}\n" + DATA + f"  {held_out}\ntrain:\n  eval_steps: 5\n"
    message = recipe_error(write_recipe(text))
    assert message.endswith(f"recipe.yaml:7:15: train.eval_steps: evaluates the held-out rows, and data.{held_out.replace(': ', ' is ')}: "
                            "nothing is held out, so it would never evaluate; expected no `eval_steps`, or "
                            "data.eval_fraction > 0 and data.eval_max_rows > 0")


def test_eval_steps_with_held_out_rows_pass(write_recipe):
    assert load_recipe(write_recipe("model: {name: tiny-llm-jp-4-8b}\n" + DATA + "train:\n  eval_steps: 5\n")).recipe.train.eval_steps == 5
