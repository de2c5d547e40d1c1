"""One test per kind of recipe mistake: each message names the file, line, dotted key and a fix."""

from __future__ import annotations

import pytest

from tune.config import RecipeError
from tune.recipe import load_recipe
from tune.config.problems import Problem
from tune.config.positions import Position

VALID_HEAD = """\
model:
  name: tiny-llm-jp-4-8b
data:
  datasets:
    - path: tune:samples/demo-chat.jsonl
"""


def test_problem_renders_file_line_key_expected_and_suggestion():
    problem = Problem(Position("r.yaml", 3, 5), "train.lrr", "unknown key", "a key of `train`", "lr")
    assert problem.render() == "r.yaml:3:5: train.lrr: unknown key; expected a key of `train` (did you mean 'lr'?)"


def test_recipe_error_is_a_user_error_with_one_line_per_problem():
    from tune.errors import UserError

    error = RecipeError([Problem(Position("a.yaml", 1, 1), "x", "bad"), Problem(Position("b.yaml"), None, "worse")])
    assert isinstance(error, UserError)
    assert str(error).splitlines() == ["a.yaml:1:1: x: bad", "b.yaml: worse"]
    assert error.lines() == str(error).splitlines()


def test_unknown_key_names_line_and_suggests(write_recipe, recipe_error):
    path = write_recipe(VALID_HEAD + "train:\n  lrr: 1e-4\n")  # lrr on line 7
    message = recipe_error(path)
    assert "recipe.yaml:7:3: train.lrr: unknown key" in message
    assert "did you mean 'lr'?" in message


def test_unknown_top_level_key_lists_sections_when_nothing_is_close(write_recipe, recipe_error):
    message = recipe_error(write_recipe(VALID_HEAD + "zzz: 1\n"))
    assert "recipe.yaml:6:1: zzz: unknown key; expected a top-level key, one of: description, model" in message
    assert "did you mean" not in message


def test_wrong_type_says_a_number(write_recipe, recipe_error):
    message = recipe_error(write_recipe(VALID_HEAD + "train:\n  lr: fast\n"))
    assert "recipe.yaml:7:7: train.lr: wrong type: got 'fast'; expected a number" in message


def test_section_of_wrong_type(write_recipe, recipe_error):
    message = recipe_error(write_recipe(VALID_HEAD + "train: 5\n"))
    assert "recipe.yaml:6:8: train: wrong type: got 5; expected a mapping (the `train` section)" in message


def test_out_of_range_says_the_bound(write_recipe, recipe_error):
    message = recipe_error(write_recipe(VALID_HEAD + "      weight: 0\ntrain:\n  warmup_steps: -3\n"))
    assert "recipe.yaml:6:15: data.datasets.0.weight: out of range: got 0; expected a number > 0" in message
    assert "recipe.yaml:8:17: train.warmup_steps: out of range: got -3; expected a whole number >= 0" in message


def test_upper_bound(write_recipe, recipe_error):
    message = recipe_error(write_recipe(VALID_HEAD + "train:\n  lr: 2\n"))
    assert "recipe.yaml:7:7: train.lr: out of range: got 2; expected a number <= 1" in message


def test_bad_choice_lists_choices_and_suggests(write_recipe, recipe_error):
    message = recipe_error(write_recipe(VALID_HEAD + "train:\n  scheduler: cosin\n"))
    assert "recipe.yaml:7:14: train.scheduler: invalid choice 'cosin'; expected one of: cosine, linear, constant" in message
    assert "(did you mean 'cosine'?)" in message


def test_bad_choice_in_a_union_field_is_one_problem(write_recipe, recipe_error):
    text = VALID_HEAD + "method:\n  peft: lora\n  lora:\n    targets: all-linar\n"
    message = recipe_error(write_recipe(text))
    assert message.count("method.lora.targets") == 1
    assert "recipe.yaml:9:14: method.lora.targets: invalid value 'all-linar'; expected 'all-linear' or a list of strings" in message
    assert "did you mean 'all-linear'?" in message


def test_bad_list_item_choice(write_recipe, recipe_error):
    message = recipe_error(write_recipe(VALID_HEAD + "logging:\n  report_to: [tensorbord]\n"))
    assert "recipe.yaml:7:15: logging.report_to.0: invalid choice 'tensorbord'" in message
    assert "did you mean 'tensorboard'?" in message


def test_pattern_mismatch(write_recipe, recipe_error):
    message = recipe_error(write_recipe(VALID_HEAD + "  conversation_start_date: 2026-4-1\n"))
    assert "recipe.yaml:6:28: data.conversation_start_date: got '2026-4-1'; expected a date written YYYY-MM-DD" in message


def test_missing_required_key_points_at_parent_section(write_recipe, recipe_error):
    path = write_recipe("description: no model name\nmodel:\n  dtype: bfloat16\ndata:\n  datasets:\n    - path: tune:samples/demo-chat.jsonl\n")
    message = recipe_error(path)
    assert "recipe.yaml:2:1: model.name: missing required key; expected text" in message


def test_missing_required_section_points_at_file_top(write_recipe, recipe_error):
    message = recipe_error(write_recipe("model:\n  name: tiny-llm-jp-4-8b\n"))
    assert "recipe.yaml:1:1: data: missing required key; expected a mapping (the `data` section)" in message


def test_empty_dataset_list(write_recipe, recipe_error):
    message = recipe_error(write_recipe("model:\n  name: tiny-llm-jp-4-8b\ndata:\n  datasets: []\n"))
    assert "recipe.yaml:4:13: data.datasets: too few items; expected at least 1 item(s)" in message


def test_model_validator_points_at_section(write_recipe, recipe_error):
    message = recipe_error(write_recipe(VALID_HEAD + "train:\n  lr: 1.0e-4\n  min_lr: 1.0e-3\n"))
    assert "recipe.yaml:6:1: train: `train.min_lr` (0.001) is above `train.lr` (0.0001)" in message


def test_method_validator_points_at_method(write_recipe, recipe_error):
    message = recipe_error(write_recipe(VALID_HEAD + "method:\n  name: sft\n  peft: none\n  lora: {r: 4}\n"))
    assert "recipe.yaml:6:1: method: `method.lora` is set but `method.peft` is `none`" in message


def test_yaml_syntax_error_has_parser_position(write_recipe, recipe_error):
    message = recipe_error(write_recipe("model:\n  name: tiny\n   bad: indent\n"))
    assert "recipe.yaml:3:7: " in message
    assert "invalid YAML" in message and "mapping values are not allowed here" in message


def test_duplicate_key_names_both_lines(write_recipe, recipe_error):
    message = recipe_error(write_recipe(VALID_HEAD + "train:\n  lr: 0.1\n  lr: 0.2\n"))
    assert "recipe.yaml:8:3: train.lr: duplicate key (first written on line 7)" in message


def test_recipe_that_is_not_a_mapping(write_recipe, recipe_error):
    message = recipe_error(write_recipe("- model\n- data\n"))
    assert "recipe.yaml:1:1: the recipe is a list; expected a mapping of sections" in message


def test_empty_recipe(write_recipe, recipe_error):
    assert "recipe.yaml:1:1: the recipe is empty" in recipe_error(write_recipe("# nothing\n"))


def test_missing_recipe_file_suggests_a_shipped_name(recipe_error):
    message = recipe_error("tiny/sft-lor")
    assert message.startswith("tiny/sft-lor: no such recipe file; expected a recipe YAML file or a shipped recipe name")
    assert "did you mean 'tiny/sft-lora'?" in message


def test_missing_base_file(write_recipe, recipe_error):
    write_recipe(VALID_HEAD, "parent.yaml")
    message = recipe_error(write_recipe("description: child\nbase: parnt.yaml\n"))
    assert "recipe.yaml:2:7: base: no recipe 'parnt.yaml'" in message
    assert "did you mean 'parent.yaml'?" in message


def test_missing_data_file_names_key_line_and_folder(write_recipe, recipe_error, tmp_path):
    path = write_recipe("model:\n  name: tiny-llm-jp-4-8b\ndata:\n  datasets:\n    - path: nowhere.jsonl\n")
    message = recipe_error(path)
    assert f"recipe.yaml:5:13: data.datasets.0.path: no such data file: {tmp_path / 'nowhere.jsonl'}" in message
    assert f"relative paths are read from {tmp_path}" in message


def test_missing_tune_path(write_recipe, recipe_error):
    path = write_recipe("model:\n  name: tiny-llm-jp-4-8b\ndata:\n  datasets:\n    - path: tune:samples/nope.jsonl\n")
    message = recipe_error(path)
    assert "recipe.yaml:5:13: data.datasets.0.path: no such file shipped with tune: tune/samples/nope.jsonl" in message


def test_unknown_preset_suggests_close_name(write_recipe, recipe_error):
    message = recipe_error(write_recipe(VALID_HEAD.replace("tiny-llm-jp-4-8b", "tiny-llm-jp4-8b")))
    assert "recipe.yaml:2:9: model.name: unknown preset 'tiny-llm-jp4-8b'" in message
    assert "did you mean 'tiny-llm-jp-4-8b'?" in message


def test_variant_not_offered_by_preset(write_recipe, recipe_error):
    text = VALID_HEAD.replace("tiny-llm-jp-4-8b", "llm-jp-4-32b-a3b\n  variant: instruct")
    message = recipe_error(write_recipe(text))
    assert "recipe.yaml:3:12: model.variant: preset 'llm-jp-4-32b-a3b' has no 'instruct' variant; expected one of: base, thinking" in message


def test_variant_with_a_hub_id(write_recipe, recipe_error):
    text = VALID_HEAD.replace("tiny-llm-jp-4-8b", "llm-jp/llm-jp-4-8b-instruct\n  variant: base")
    message = recipe_error(write_recipe(text))
    assert "recipe.yaml:3:12: model.variant: a variant applies only to presets" in message


def test_misspelled_variant_is_a_bad_choice(write_recipe, recipe_error):
    text = VALID_HEAD.replace("tiny-llm-jp-4-8b", "llm-jp-4-8b\n  variant: instrct")
    assert "did you mean 'instruct'?" in recipe_error(write_recipe(text))


def test_every_problem_is_reported_at_once_in_reading_order(write_recipe, recipe_error):
    text = VALID_HEAD + "train:\n  lrr: 1\n  scheduler: cosin\n"
    lines = recipe_error(write_recipe(text), ["train.seed=-1"]).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["train.lrr", "train.scheduler", "train.seed"]
    assert lines[-1].startswith("command-line override `train.seed=-1`: train.seed: out of range")


def test_error_in_inherited_value_points_into_the_base_file(write_recipe, recipe_error):
    write_recipe(VALID_HEAD + "train:\n  scheduler: cosin\n", "parent.yaml")
    message = recipe_error(write_recipe("base: parent.yaml\ndescription: child\n"))
    assert "parent.yaml:7:14: train.scheduler: invalid choice 'cosin'" in message


@pytest.mark.parametrize("bad", ["train.lr=fast", "train.lrr=1"])
def test_override_errors_never_mention_pydantic(write_recipe, bad):
    with pytest.raises(RecipeError) as info:
        load_recipe(write_recipe(VALID_HEAD), [bad])
    assert "pydantic" not in str(info.value) and "errors.pydantic.dev" not in str(info.value)
