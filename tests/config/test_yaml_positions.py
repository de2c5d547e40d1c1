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


def alias_bomb(levels: int = 7, width: int = 9) -> str:
    """A recipe of a few hundred bytes whose aliases expand to width**levels values."""
    lines = ["a0: &a0 [" + ",".join(["lol"] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\nmodel:\n  name: tiny-llm-jp-4-8b\ndata:\n  datasets:\n    - path: tune:samples/demo-chat.jsonl\n"


def test_alias_bomb_is_refused_in_well_under_a_second_at_its_line(write_recipe, recipe_error):
    import time

    from tune.config.yaml_positions import MAX_NODES

    path = write_recipe(alias_bomb())
    assert len(path.read_bytes()) < 450 and 9 ** 7 > 100 * MAX_NODES
    started = time.perf_counter()
    message = recipe_error(path)
    assert time.perf_counter() - started < 0.5
    # the first value past the bound: a4 holds 9**5 values
    assert message == f"{path}:5:5: a4: more than 20,000 values once its aliases are expanded (nested aliases multiply); " \
                      "expected a recipe of at most 20,000 values"


def test_aliases_within_the_bound_still_work(write_recipe):
    data, _ = read_yaml_file(write_recipe(alias_bomb(levels=3, width=9)))  # 729 values
    assert len(data["a2"]) == 9 and data["a2"][8] == [["lol"] * 9] * 9


def test_an_alias_bomb_on_the_command_line_is_refused(recipe_error):
    from tune.config import RecipeError
    from tune.recipe import load_recipe

    bomb = "[&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]]"
    with pytest.raises(RecipeError) as info:
        load_recipe("tiny/sft-lora", [f"description={bomb}"])
    assert str(info.value).startswith(f"command-line override `description={bomb[:85]}...`: description: the value '[&a [1,")
    assert "more than 20,000 values once its aliases are expanded" in str(info.value)


def test_a_recursive_alias_is_refused(write_recipe):
    with pytest.raises(RecipeError) as info:
        read_yaml_file(write_recipe("a: &a [1, *a]\n"))
    assert info.value.lines() == [f"{info.value.problems[0].position.source}:1:4: a.1: an alias inside its own anchor "
                                  "(a recursive alias); expected an alias of a value written before it"]


@pytest.mark.parametrize("text", ["a: " + "[" * 2000 + "]" * 2000 + "\n", "a: " + "[" * 80 + "]" * 80 + "\n"])
def test_deep_nesting_is_a_problem_not_a_traceback(write_recipe, text):
    with pytest.raises(RecipeError) as info:
        read_yaml_file(write_recipe(text))
    assert "nesting too deep; expected at most 64 levels" in str(info.value)


@pytest.mark.parametrize("text, where, tag", [
    ("model: !custom\n  name: x\n", ":1:8: model:", "!custom"),  # a tag on a mapping used to be ignored
    ("train: !!map\n  lr: 1\n", None, None),  # the tag YAML gives a mapping anyway: harmless, accepted
    ("a: !!set {x, y}\n", ":1:4: a:", "!!set"),
    ("a: !!omap [x: 1]\n", ":1:4: a:", "!!omap"),
    ("a:\n  - !seq [1]\n", ":2:5: a.0:", "!seq"),
    ("a: !!str 5\n", ":1:4: a:", "!!str"),  # changes what the value means (5 would be a number)
    ("a: !!float 1\n", ":1:4: a:", "!!float"),
    ("a: !!binary aGk=\n", ":1:4: a:", "!!binary"),
    ("a: !!timestamp 2026-01-01\n", ":1:4: a:", "!!timestamp"),
])
def test_yaml_tags_are_refused_wherever_they_stand(write_recipe, text, where, tag):
    path = write_recipe(text)
    if where is None:
        read_yaml_file(path)
        return
    with pytest.raises(RecipeError) as info:
        read_yaml_file(path)
    assert str(info.value) == (f"{path}{where} cannot read this value: YAML tags ({tag}) are not read in recipes; "
                               "expected a plain value without `!` tags (quote text that starts with `!`)")


def test_a_tag_in_an_override_is_refused():
    from tune.config.overrides import parse_overrides

    parsed, problems = parse_overrides(["train.lr=!!float 1", "model.name=!x tiny"])
    assert parsed == [] and [p.render() for p in problems] == [
        "command-line override `train.lr=!!float 1`: train.lr: the value '!!float 1': cannot read this value: "
        "YAML tags (!!float) are not read in recipes; expected a plain value without `!` tags (quote text that starts with `!`)",
        "command-line override `model.name=!x tiny`: model.name: the value '!x tiny': cannot read this value: "
        "YAML tags (!x) are not read in recipes; expected a plain value without `!` tags (quote text that starts with `!`)",
    ]


def test_a_merge_of_a_scalar_is_a_problem_not_a_traceback(write_recipe):
    with pytest.raises(RecipeError) as info:
        read_yaml_file(write_recipe("a:\n  <<: 5\n"))
    assert ":2:7: a: cannot merge this value (expected a mapping or list of mappings for merging, but found scalar)" in str(info.value)


def test_a_number_python_will_not_read_is_a_problem_not_a_traceback(write_recipe):
    with pytest.raises(RecipeError) as info:
        read_yaml_file(write_recipe("train:\n  max_steps: " + "9" * 5000 + "\n"))
    assert str(info.value).endswith(":2:14: train.max_steps: cannot read this value (Exceeds the limit (4300 digits) for "
                                    "integer string conversion: value has 5000 digits); expected a plain YAML value")
    from tune.config.overrides import parse_overrides

    parsed, problems = parse_overrides(["train.max_steps=" + "9" * 5000])
    assert parsed == [] and problems[0].render().startswith("command-line override `train.max_steps=999")
    assert problems[0].render().endswith("...': cannot read this value (Exceeds the limit (4300 digits) for integer "
                                         "string conversion: value has 5000 digits)")
