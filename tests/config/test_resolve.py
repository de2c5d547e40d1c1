"""Resolution: tune: paths, relative paths, model names and variants, the default output folder."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

import tune
from tune.recipe import load_recipe
from tune.resources import resolve_tune_path, shipped_recipes_dir

DATA = "data:\n  datasets:\n    - path: tune:samples/demo-chat.jsonl\n"
TUNE_DIR = Path(tune.__file__).resolve().parent


def test_tune_paths_name_files_in_the_package():
    assert resolve_tune_path("samples/demo-chat.jsonl") == TUNE_DIR / "samples" / "demo-chat.jsonl"
    assert shipped_recipes_dir() == TUNE_DIR.parent / "recipes"


def test_tune_path_refuses_escapes():
    for bad in ("", "/etc/passwd", "../x"):
        with pytest.raises(ValueError):
            resolve_tune_path(bad)


def test_data_paths_become_absolute(write_recipe, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "rows.jsonl").write_text('{"messages": []}\n')
    recipe = load_recipe(write_recipe("model: {name: tiny-llm-jp-4-8b}\ndata:\n  datasets:\n    - path: sub/rows.jsonl\n    - path: tune:samples/demo-chat.jsonl\n")).recipe
    assert [d.path for d in recipe.data.datasets] == [str(tmp_path / "sub" / "rows.jsonl"), str(TUNE_DIR / "samples" / "demo-chat.jsonl")]


def test_model_path_and_tokenizer_resolve_against_the_recipe_folder(write_recipe, tmp_path):
    text = "model:\n  name: llm-jp-4-8b\n  path: ckpt\n  tokenizer: ../tok\n" + DATA
    model = load_recipe(write_recipe(text)).recipe.model
    assert model.path == str(tmp_path / "ckpt") and model.tokenizer == str(tmp_path.parent / "tok")


def test_model_name_kinds(write_recipe, tmp_path):
    (tmp_path / "my-ckpt").mkdir()
    local = load_recipe(write_recipe("model: {name: my-ckpt}\n" + DATA)).recipe.model
    assert local.name == str(tmp_path / "my-ckpt") and local.variant is None
    hub = load_recipe(write_recipe("model: {name: llm-jp/llm-jp-4-8b-instruct}\n" + DATA)).recipe.model
    assert hub.name == "llm-jp/llm-jp-4-8b-instruct"


def test_preset_variant_defaults_to_the_presets_default(write_recipe):
    assert load_recipe(write_recipe("model: {name: llm-jp-4-8b}\n" + DATA)).recipe.model.variant == "base"
    assert load_recipe(write_recipe("model: {name: llm-jp-4-8b, variant: thinking}\n" + DATA)).recipe.model.variant == "thinking"
    assert load_recipe(write_recipe("model: {name: tiny-llm-jp-4-8b}\n" + DATA)).recipe.model.variant is None


def test_variant_with_local_directory_is_refused(write_recipe, recipe_error, tmp_path):
    (tmp_path / "my-ckpt").mkdir()
    message = recipe_error(write_recipe("model: {name: my-ckpt, variant: base}\n" + DATA))
    assert "model.variant: a variant applies only to presets" in message and "is a local directory" in message


def test_default_output_dir_is_under_cwd_named_after_the_recipe(write_recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_recipe("model: {name: tiny-llm-jp-4-8b}\n" + DATA, "my-exp.yaml")
    loaded = load_recipe(path, now=datetime(2026, 5, 6, 7, 8, 9))
    assert loaded.recipe.output.dir == str(tmp_path / "runs" / "my-exp-20260506-070809")


def test_relative_output_dir_is_relative_to_cwd(write_recipe, tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    path = write_recipe("model: {name: tiny-llm-jp-4-8b}\n" + DATA + "output: {dir: out/x}\n")
    assert load_recipe(path).recipe.output.dir == str(tmp_path / "elsewhere" / "out" / "x")


def test_source_path_is_absolute(write_recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_recipe("model: {name: tiny-llm-jp-4-8b}\n" + DATA)
    assert load_recipe("recipe.yaml").source_path == tmp_path / "recipe.yaml"
