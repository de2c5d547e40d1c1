"""Command-line overrides: YAML values, list indexes, new sections, and their error positions."""

from __future__ import annotations

from tune.recipe import load_recipe
from tune.config.overrides import parse_overrides

RECIPE = "model:\n  name: tiny-llm-jp-4-8b\ndata:\n  datasets:\n    - path: tune:samples/demo-chat.jsonl\n"


def test_values_are_yaml_and_the_schema_decides_types(write_recipe):
    overrides = ["train.lr=1e-4", "train.max_steps=5", "logging.report_to=[tensorboard]", "train.gradient_checkpointing=true", "model.revision=null"]
    recipe = load_recipe(write_recipe(RECIPE), overrides).recipe
    assert recipe.train.lr == 1e-4 and isinstance(recipe.train.lr, float)
    assert recipe.train.max_steps == 5
    assert recipe.logging.report_to == ["tensorboard"]
    assert recipe.train.gradient_checkpointing is True
    assert recipe.model.revision is None


def test_list_index_and_append(write_recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "extra.jsonl").write_text('{"messages": []}\n')
    recipe = load_recipe(write_recipe(RECIPE), ["data.datasets.0.weight=2", "data.datasets.1.path=extra.jsonl"]).recipe
    assert recipe.data.datasets[0].weight == 2.0
    assert recipe.data.datasets[1].path == str(tmp_path / "extra.jsonl")  # relative to the current folder


def test_override_creates_missing_sections(write_recipe):
    recipe = load_recipe(write_recipe(RECIPE), ["method.peft=lora", "method.lora.r=4"]).recipe
    assert recipe.method.lora.r == 4


def test_later_override_wins(write_recipe):
    assert load_recipe(write_recipe(RECIPE), ["train.seed=1", "train.seed=2"]).recipe.train.seed == 2


def test_unknown_key_names_the_override_and_suggests(write_recipe, recipe_error):
    message = recipe_error(write_recipe(RECIPE), ["train.lrr=1"])
    assert message == "command-line override `train.lrr=1`: train.lrr: unknown key; expected a key of `train` (did you mean 'lr'?)"


def test_bad_value_names_the_override(write_recipe, recipe_error):
    message = recipe_error(write_recipe(RECIPE), ["train.scheduler=cosin"])
    assert message.startswith("command-line override `train.scheduler=cosin`: train.scheduler: invalid choice 'cosin'")
    assert "did you mean 'cosine'?" in message


def test_malformed_overrides(write_recipe, recipe_error):
    lines = recipe_error(write_recipe(RECIPE), ["train.lr", "=3", "train..lr=1"]).splitlines()
    assert lines == [
        f"command-line override `{text}`: malformed override; expected `key.path=value`, like `train.lr=1e-4`"
        for text in ("train.lr", "=3", "train..lr=1")
    ]


def test_index_out_of_range_and_path_through_a_value(write_recipe, recipe_error):
    message = recipe_error(write_recipe(RECIPE), ["data.datasets.5.path=x", "model.name.x=1"])
    assert "command-line override `data.datasets.5.path=x`: data.datasets.5: no item '5' in a list of 1" in message
    assert "command-line override `model.name.x=1`: model.name: is a single value, not a section" in message


def test_base_cannot_be_overridden():
    _, problems = parse_overrides(["base=x.yaml"])
    assert problems[0].render() == "command-line override `base=x.yaml`: base: `base` cannot be overridden; expected `base:` written in a recipe file"
