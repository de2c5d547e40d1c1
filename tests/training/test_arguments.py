"""`logging.report_to` reaches the trainer's arguments, each name one transformers knows a tracker for."""

import pytest


@pytest.mark.parametrize("tracker", ["tensorboard", "wandb", "mlflow", "trackio"])
def test_each_tracker_reaches_training_arguments_with_the_run_name(tracker, tmp_path):
    from transformers.integrations import TrackioCallback, get_reporting_integration_callbacks

    from tune.recipe import load_recipe
    from tune.training.arguments import sft_config

    recipe = load_recipe("tiny/sft-lora", [f"logging.report_to=[{tracker}]", "train.precision=fp32"]).recipe
    config = sft_config(recipe, tmp_path / "sft-lora-run")
    assert config.report_to == [tracker] and config.run_name == "sft-lora-run"
    callbacks = get_reporting_integration_callbacks(config.report_to)  # the trainer builds these from it
    assert len(callbacks) == 1 and (callbacks[0] is TrackioCallback) == (tracker == "trackio")


def test_no_tracker_means_none_and_an_unknown_one_is_refused_with_the_choices(tmp_path, write_recipe, recipe_error):
    from tune.recipe import load_recipe
    from tune.training.arguments import sft_config

    assert sft_config(load_recipe("tiny/sft-lora", ["train.precision=fp32"]).recipe, tmp_path).report_to == []
    message = recipe_error(write_recipe("model: {name: tiny-llm-jp-4-8b}\n"
                                        "data: {datasets: [{path: tune:samples/demo-chat.jsonl}]}\n"
                                        "logging: {report_to: [trakio]}\n"))
    assert "logging.report_to.0: invalid choice 'trakio'" in message and "did you mean 'trackio'" in message, message
