"""Every shipped recipe validates, and a resolved recipe loads again into an equal Recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tune.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "recipes").rglob("*.yaml"))


def test_there_are_shipped_recipes():
    assert len(SHIPPED) >= 4


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(REPO / "recipes").as_posix())
def test_shipped_recipe_validates_and_round_trips(path, tmp_path):
    loaded = load_recipe(path)
    assert loaded.recipe.description, "every shipped recipe needs a description for `tune ls`"
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(loaded.to_yaml(), encoding="utf-8")
    again = load_recipe(resolved)
    assert again.recipe == loaded.recipe
    assert again.to_yaml().split("\n", 1)[1] == loaded.to_yaml().split("\n", 1)[1]


def test_dump_has_every_field_in_schema_order_and_no_base(repo_root):
    loaded = load_recipe(repo_root / "recipes" / "tiny" / "sft-full.yaml")
    data = yaml.safe_load(loaded.to_yaml())
    assert "base" not in data
    assert list(data) == ["description", "model", "method", "data", "train", "output", "logging", "launch"]
    assert list(data["train"])[:3] == ["epochs", "max_steps", "lr"]
    assert data["train"]["adam_epsilon"] == 1e-8 and data["method"]["lora"] is None
    assert data["train"]["lr"] == 1e-3 and data["model"]["name"] == "tiny-llm-jp-4-8b"  # child value, parent value


def test_round_trip_with_base_and_overrides(write_recipe, tmp_path):
    write_recipe("base: tiny/sft-lora\ntrain: {seed: 5}\n", "child.yaml")
    loaded = load_recipe(tmp_path / "child.yaml", ["train.lr=1e-3", "method.lora.r=8"])
    again = load_recipe(write_recipe(loaded.to_yaml(), "resolved.yaml"))
    assert again.recipe == loaded.recipe
    assert (again.recipe.train.seed, again.recipe.train.lr, again.recipe.method.lora.r) == (5, 1e-3, 8)


def test_resolved_recipe_loads_from_another_folder(repo_root, tmp_path, monkeypatch):
    loaded = load_recipe(repo_root / "recipes" / "tiny" / "sft-lora.yaml")
    saved = tmp_path / "run" / "recipe.yaml"
    saved.parent.mkdir()
    saved.write_text(loaded.to_yaml(), encoding="utf-8")
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    assert load_recipe(saved).recipe == loaded.recipe


def test_json_matches_yaml(repo_root):
    loaded = load_recipe(repo_root / "recipes" / "llm-jp-4-8b" / "sft-lora.yaml")
    assert json.loads(loaded.to_json()) == yaml.safe_load(loaded.to_yaml()) == loaded.to_dict()
