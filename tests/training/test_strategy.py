"""`launch.strategy` as trainer arguments (tune.training.strategy), the cosine's floor as a rate (the ZeRO-3
crash), and what validation refuses for a strategy (tune.recipe.architecture_checks). The jobs themselves:
tests/distributed/test_topology.py."""

from __future__ import annotations

import pytest


def recipe(*overrides: str, name: str = "tiny/sft-full"):
    from tune.recipe import load_recipe

    return load_recipe(name, ["train.precision=fp32", *overrides]).recipe


def test_ddp_adds_only_the_collective_timeout():
    from tune.training.strategy import strategy_kwargs

    assert strategy_kwargs(recipe("launch.timeout_minutes=0.5")) == {"ddp_timeout": 30}


def test_fsdp2_is_full_shard_version_2_with_a_full_state_dict(tmp_path):
    from tune.training import cpu_sharding
    from tune.training.arguments import sft_config

    from tune.training.strategy import strategy_kwargs

    assert strategy_kwargs(recipe("launch.strategy=fsdp2"))["fsdp"] is True  # not the deprecated string form
    try:
        config = sft_config(recipe("launch.strategy=fsdp2", "launch.processes_per_node=2"), tmp_path)
        assert config.fsdp_config["version"] == 2
        assert config.fsdp_config["state_dict_type"] == "FULL_STATE_DICT"  # final/ loads in plain transformers
        assert config.fsdp_config["cpu_offload"] is False
        assert cpu_sharding._ORIGINAL_INIT is not None  # installed on a machine without CUDA
    finally:
        cpu_sharding.uninstall()


@pytest.mark.parametrize("strategy, stage", [("deepspeed_zero2", 2), ("deepspeed_zero3", 3)])
def test_deepspeed_config_takes_every_batch_and_precision_value_from_the_recipe(strategy, stage):
    from tune.training.strategy import strategy_kwargs

    config = strategy_kwargs(recipe(f"launch.strategy={strategy}", "launch.cpu_offload=true"))["deepspeed"]
    zero = config["zero_optimization"]
    assert zero["stage"] == stage and zero["offload_optimizer"]["device"] == "cpu"
    assert ("offload_param" in zero) == (stage == 3)
    assert zero.get("stage3_gather_16bit_weights_on_model_save", False) == (stage == 3)  # final/ is whole
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"):
        assert config[key] == "auto"  # filled by the Trainer from the recipe, as on one process
    assert config["zero_force_ds_cpu_optimizer"] is False  # the recipe's optimizer, also with offload


def test_the_cosine_floor_goes_to_transformers_as_a_rate(tmp_path):
    from tune.training.arguments import trainer_kwargs

    kwargs = trainer_kwargs(recipe("train.lr=2e-5", "train.min_lr=2e-6"), tmp_path)
    # a rate, not min_lr: transformers would read optimizer.defaults, which DeepSpeed ZeRO-3's optimizer lacks
    assert kwargs["lr_scheduler_kwargs"] == {"min_lr_rate": pytest.approx(0.1)}


def test_the_min_lr_hold_takes_the_rate_and_needs_no_optimizer_defaults():
    from types import SimpleNamespace

    import torch

    from tune.training.schedule import MinLrHoldMixin

    class Trainer(MinLrHoldMixin):
        def __init__(self, args, optimizer, min_lr_hold_steps):
            self.args, self.optimizer, self.lr_scheduler = args, optimizer, None
            self.min_lr_hold_steps = min_lr_hold_steps

    def schedule(kwargs, optimizer):
        args = SimpleNamespace(learning_rate=2e-5, lr_scheduler_type="cosine_with_min_lr", warmup_steps=2,
                               lr_scheduler_kwargs=kwargs, get_warmup_steps=lambda steps: 2)
        scheduler = Trainer(args, optimizer, min_lr_hold_steps=3).create_scheduler(10)
        return [scheduler.lr_lambdas[0](step) for step in range(10)]

    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-5)
    no_defaults = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-5)
    del no_defaults.defaults  # as under DeepSpeed ZeRO-3: reading it would raise
    by_rate = schedule({"min_lr_rate": 0.1}, no_defaults)
    assert by_rate == pytest.approx(schedule({"min_lr": 2e-6}, sgd), rel=1e-12)
    assert by_rate[-3:] == [pytest.approx(0.1)] * 3


@pytest.mark.parametrize("strategy", ["fsdp2", "deepspeed_zero3"])
def test_moe_qlora_under_a_sharding_strategy_is_refused_at_validation(strategy, recipe_error):
    text = recipe_error("tiny/moe-qlora", [f"launch.strategy={strategy}", "launch.processes_per_node=2"])
    assert "launch.strategy" in text and "4 bits" in text and "cannot be sharded" in text


def test_moe_qlora_under_ddp_and_zero2_and_moe_lora_under_fsdp2_are_accepted():
    recipe("launch.strategy=ddp", "launch.processes_per_node=2", name="tiny/moe-qlora")
    recipe("launch.strategy=deepspeed_zero2", "launch.processes_per_node=2", name="tiny/moe-qlora")
    recipe("launch.strategy=fsdp2", "launch.processes_per_node=2", name="tiny/moe-lora")


def test_deepspeed_refuses_training_16_bit_weights_directly(recipe_error):
    text = recipe_error("tiny/sft-full", ["launch.strategy=deepspeed_zero3", "model.dtype=bfloat16",
                                          "train.master_weights=none"])
    assert "train.master_weights" in text and "DeepSpeed" in text


def test_fp32_masters_load_fp32_weights_and_none_loads_the_model_dtype():
    import torch

    from tune.models.loading import weights_dtype

    assert weights_dtype(recipe()) == torch.float32
    assert weights_dtype(recipe("model.dtype=bfloat16", "train.master_weights=none")) == torch.bfloat16
    assert weights_dtype(recipe("model.dtype=bfloat16", name="tiny/sft-lora")) == torch.bfloat16  # LoRA: as before


def test_deepspeed_missing_is_a_user_error_naming_the_extra(monkeypatch):
    import importlib.util

    from tune.errors import UserError
    from tune.training.strategy import strategy_kwargs

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    with pytest.raises(UserError, match=r"needs DeepSpeed.*tune\[deepspeed\]"):
        strategy_kwargs(recipe("launch.strategy=deepspeed_zero3"))
