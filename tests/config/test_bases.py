"""``base:`` chains: deep merge rules, relative and shipped bases, cycles."""

from __future__ import annotations

import re

import pytest

from tune.config import RecipeError
from tune.recipe import load_recipe
from tune.config.bases import load_with_bases

PARENT = """\
description: parent
model:
  name: tiny-llm-jp-4-8b
  dtype: float32
method:
  peft: lora
  lora: {r: 4, alpha: 8}
data:
  datasets:
    - path: tune:samples/demo-chat.jsonl
      weight: 2
train:
  lr: 0.01
  min_lr: 0.001
  seed: 7
"""


def test_child_overrides_scalars_and_inherits_the_rest(write_recipe):
    write_recipe(PARENT, "parent.yaml")
    child = write_recipe("base: parent.yaml\ndescription: child\ntrain:\n  lr: 0.02\n")
    recipe = load_recipe(child).recipe
    assert recipe.description == "child"
    assert recipe.train.lr == 0.02
    assert (recipe.train.min_lr, recipe.train.seed, recipe.model.dtype) == (0.001, 7, "float32")
    assert recipe.method.lora.r == 4 and recipe.data.datasets[0].weight == 2


def test_explicit_null_replaces_and_lists_replace_whole(write_recipe, tmp_path):
    write_recipe(PARENT, "parent.yaml")
    (tmp_path / "mine.jsonl").write_text('{"messages": []}\n')
    child = write_recipe("base: parent.yaml\nmethod:\n  peft: none\n  lora: null\ndata:\n  datasets:\n    - path: mine.jsonl\n")
    recipe = load_recipe(child).recipe
    assert recipe.method.peft == "none" and recipe.method.lora is None
    assert [d.path for d in recipe.data.datasets] == [str(tmp_path / "mine.jsonl")]
    assert recipe.data.datasets[0].weight == 1.0  # the parent's list item is gone, not merged


def test_positions_come_from_the_file_that_wrote_each_value(write_recipe):
    write_recipe(PARENT, "parent.yaml")
    child = write_recipe("base: parent.yaml\ntrain:\n  lr: 0.02\n", "child.yaml")
    tree, positions = load_with_bases(child)
    assert "base" not in tree
    assert positions.values["train.lr"].label().endswith("child.yaml:3:7")
    assert positions.values["train.seed"].label().endswith("parent.yaml:15:9")
    assert positions.root.label().endswith("child.yaml:1:1")


def test_relative_data_paths_resolve_against_the_file_that_wrote_them(write_recipe, tmp_path):
    (tmp_path / "base" / "data.jsonl").parent.mkdir()
    (tmp_path / "base" / "data.jsonl").write_text('{"messages": []}\n')
    write_recipe(PARENT.replace("tune:samples/demo-chat.jsonl", "data.jsonl"), "base/parent.yaml")
    child = write_recipe("base: base/parent.yaml\n", "child.yaml")
    assert load_recipe(child).recipe.data.datasets[0].path == str(tmp_path / "base" / "data.jsonl")


def test_chain_of_three(write_recipe):
    write_recipe(PARENT, "a.yaml")
    write_recipe("base: a.yaml\ntrain: {seed: 8}\n", "b.yaml")
    recipe = load_recipe(write_recipe("base: b.yaml\ntrain: {lr: 0.5}\n", "c.yaml")).recipe
    assert (recipe.train.seed, recipe.train.lr, recipe.description) == (8, 0.5, "parent")


def test_shipped_name_as_base(write_recipe):
    for base in ("tiny/sft-lora", "tiny/sft-lora.yaml"):
        recipe = load_recipe(write_recipe(f"base: {base}\ntrain: {{seed: 3}}\n")).recipe
        assert recipe.model.name == "tiny-llm-jp-4-8b" and recipe.method.lora.r == 16 and recipe.train.seed == 3


def test_cycle_is_refused(write_recipe, recipe_error):
    write_recipe("base: b.yaml\n", "a.yaml")
    b = write_recipe("base: a.yaml\n", "b.yaml")
    message = recipe_error(b)
    assert "a.yaml:1:7: base: the `base` chain loops: " in message
    assert re.search(r"loops: \S*/b\.yaml -> \S*/a\.yaml -> \S*/b\.yaml; expected a chain of bases that ends", message)


def test_self_base_is_a_cycle(write_recipe, recipe_error):
    assert "the `base` chain loops" in recipe_error(write_recipe("base: recipe.yaml\n"))


def test_base_must_be_text(write_recipe):
    with pytest.raises(RecipeError) as info:
        load_recipe(write_recipe("base: [a]\n"))
    assert "recipe.yaml:1:7: base: got ['a']; expected a recipe YAML file or a shipped recipe name" in str(info.value)
