"""METHODS, the method union and the method sections: one table, one class per method, each with its own keys."""

from importlib import import_module

import pytest
import yaml

from tune.config.methods import METHODS
from tune.config.schema import METHOD_NAMES, METHOD_SECTIONS
from tune.recipe import load_recipe

HEAD = "model: {name: tiny-llm-jp-4-8b}\ndata: {datasets: [{path: tune:samples/demo-chat.jsonl}]}\n"
CPT_HEAD = "model: {name: tiny-llm-jp-4-8b}\ndata: {corpora: [{prefix: tune:samples/corpora/tiny-ja, repeat: 2}]}\n"
DPO_HEAD = "model: {name: tiny-llm-jp-4-8b}\ndata: {datasets: [{card: ac-self-inst, use: samples}]}\n"


def test_the_table_the_union_and_the_training_functions_agree():
    from tune.data.pipeline import BUILDERS

    assert list(METHODS) == list(METHOD_NAMES)
    assert [row.section for row in METHODS.values()] == list(METHOD_SECTIONS)
    for name, row in METHODS.items():
        module, function = row.train.split(":")
        assert callable(getattr(import_module(module), function)), row.train
        assert row.data_kind in BUILDERS or (row.data_kind == "corpus" and name == "cpt"), name
        assert 0 <= row.section.DEFAULT_MIN_LR <= row.section.DEFAULT_LR


def test_each_method_takes_only_its_own_keys(write_recipe, recipe_error):
    text = recipe_error(write_recipe(HEAD + "method: {name: sft, dpo: {beta: 0.1}}\n"))
    assert text.endswith("recipe.yaml:3:21: method.dpo: a key of method `dpo`, not of `sft`; expected method.name: dpo, or no `dpo`")


def test_a_method_name_tune_lacks_is_an_invalid_choice_with_a_suggestion(write_recipe, recipe_error):
    text = recipe_error(write_recipe(HEAD + "method:\n  name: dpp\n"))
    assert text.endswith("recipe.yaml:4:9: method.name: invalid choice 'dpp'; expected one of: sft, dpo, cpt (did you mean 'dpo'?)")
    assert "method.name: invalid choice 'cpo'" in recipe_error(write_recipe(HEAD + "method: {name: cpo}\n"))
    text = recipe_error(write_recipe(HEAD + "method: sft\n"))
    assert "method: wrong type: got 'sft'; expected a mapping (the `method` section)" in text


def test_errors_inside_a_method_section_point_at_their_key(write_recipe, recipe_error):
    text = recipe_error(write_recipe(DPO_HEAD + "method:\n  name: dpo\n  dpo:\n    beta: -1\n"))
    assert text.endswith("recipe.yaml:6:11: method.dpo.beta: out of range: got -1; expected a number > 0")


def test_the_method_defaults_to_sft_with_its_published_learning_rates(write_recipe):
    recipe = load_recipe(write_recipe(HEAD)).recipe
    assert recipe.method.name == "sft" and (recipe.train.lr, recipe.train.min_lr) == (2e-5, 2e-6)
    dpo = load_recipe(write_recipe(DPO_HEAD + "method: {name: dpo}\n")).recipe
    assert (dpo.train.lr, dpo.train.min_lr) == (9e-7, 5e-7) and dpo.method.dpo.beta == 0.5


def test_a_resolved_recipe_of_an_older_tune_still_loads(write_recipe):
    """Older resolved recipes wrote every method's section, `dpo: null` on an SFT run."""
    old = yaml.safe_load(load_recipe(write_recipe(HEAD)).to_yaml())
    old["method"]["dpo"] = None
    recipe = load_recipe(write_recipe(yaml.safe_dump(old), name="old.yaml")).recipe
    assert recipe.method.name == "sft" and "dpo" not in recipe.method.model_dump()


@pytest.mark.parametrize("name", list(METHODS))
def test_resolved_recipes_of_every_method_round_trip(name, write_recipe):
    head = {"preference": DPO_HEAD, "corpus": CPT_HEAD}.get(METHODS[name].data_kind, HEAD)
    loaded = load_recipe(write_recipe(head + f"method: {{name: {name}}}\n"))
    again = load_recipe(write_recipe(loaded.to_yaml(), name="again.yaml"))
    assert again.recipe == loaded.recipe


def test_data_fits_the_method_and_conversation_keys_are_refused_on_cpt(write_recipe, recipe_error):
    text = recipe_error(write_recipe(HEAD + "method: {name: cpt}\n"))
    assert "method `cpt` trains on pre-tokenized corpora: write `data.corpora: [{prefix: PATH}, ...]`" in text
    text = recipe_error(write_recipe(CPT_HEAD + "method: {name: sft}\n"))
    assert "`data.corpora` (pre-tokenized corpora) is the data of method `cpt`, and this recipe's method is `sft`" in text
    text = recipe_error(write_recipe("model: {name: tiny-llm-jp-4-8b}\nmethod: {name: cpt}\ndata:\n"
                                     "  corpora: [{prefix: tune:samples/corpora/tiny-ja}]\n  train_on: last_assistant\n"))
    assert text.endswith("recipe.yaml:5:3: data.train_on: unknown key; expected a key of `data`, one of: corpora, "
                         "corpus_root, max_seq_len, eval_fraction, eval_samples, eval_corpora")
    recipe = load_recipe(write_recipe(CPT_HEAD + "method: {name: cpt}\n")).recipe
    assert (recipe.train.lr, recipe.train.min_lr, recipe.train.adam_beta2) == (3e-4, 0.0, 0.95)
