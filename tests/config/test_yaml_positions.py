"""YAML reading with positions: every key path, duplicates refused, dates kept as text."""

from __future__ import annotations

import pytest

from tune.config import RecipeError
from tune.config.yaml_positions import parse_scalar_text, read_yaml_file


def test_records_key_and_value_positions_by_dotted_path(write_recipe):
    path = write_recipe("train:\n  lr:   0.1\ndata:\n  datasets:\n    - path: a.jsonl\n      weight: 2\n")
    data, positions = read_yaml_file(path)
    assert data == {"train": {"lr": 0.1}, "data": {"datasets": [{"path": "a.jsonl", "weight": 2}]}}
    assert (positions.keys["train.lr"].line, positions.keys["train.lr"].column) == (2, 3)
    assert (positions.values["train.lr"].line, positions.values["train.lr"].column) == (2, 9)
    assert positions.keys["data.datasets.0"].line == 5
    assert positions.keys["data.datasets.0.weight"].label().endswith("recipe.yaml:6:7")
    assert positions.keys["train"].file == path


def test_nearest_parent_is_the_fallback(write_recipe):
    _, positions = read_yaml_file(write_recipe("train:\n  lr: 0.1\n"))
    assert positions.key("train.min_lr").line == 1
    assert positions.value("model.name") == positions.root


def test_duplicate_keys_are_refused_with_both_lines(write_recipe):
    with pytest.raises(RecipeError) as info:
        read_yaml_file(write_recipe("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n"))
    assert info.value.lines() == [
        f"{info.value.problems[0].position.source}:4:3: b.c: duplicate key (first written on line 3); expected each key once per mapping",
        f"{info.value.problems[0].position.source}:5:1: a: duplicate key (first written on line 1); expected each key once per mapping",
    ]


def test_dates_stay_text_and_numbers_stay_numbers(write_recipe):
    data, _ = read_yaml_file(write_recipe("d: 2026-04-01\nx: 3\ny: 1.0e-4\nz: 1e-4\nflag: true\n"))
    assert data == {"d": "2026-04-01", "x": 3, "y": 1.0e-4, "z": "1e-4", "flag": True}


def test_anchors_and_merge_keys(write_recipe):
    data, _ = read_yaml_file(write_recipe("common: &c {a: 1, b: 2}\nuse:\n  <<: *c\n  b: 3\n"))
    assert data["use"] == {"a": 1, "b": 3}


def test_unknown_tag_is_a_positioned_problem(write_recipe):
    with pytest.raises(RecipeError) as info:
        read_yaml_file(write_recipe("a:\n  b: !python/object x\n"))
    assert ":2:6: a.b: cannot read this value" in str(info.value)


def test_override_values_parse_as_yaml():
    assert parse_scalar_text("[a, b]") == ["a", "b"]
    assert parse_scalar_text("null") is None
    assert parse_scalar_text("2026-04-01") == "2026-04-01"
    assert parse_scalar_text("") is None
