"""`train.scheduler: wsd`: a real trainer's lr at each phase boundary equals Megatron's WSD closed form."""

from __future__ import annotations

import math

import pytest
import torch

from tune.errors import UserError


def megatron_lr(n, *, max_lr, min_lr, warmup, total, decay, style):
    """Megatron-Core's OptimizerParamScheduler.get_lr with lr_decay_style WSD (megatron/core/
    optimizer_param_scheduler.py, NVIDIA/Megatron-LM d98e8a6), init_lr 0, lr_decay_steps = total, in
    iterations (Megatron counts samples: every length x the global batch, which cancels), transcribed as
    the reference. n is the optimizer step, from 0."""
    if warmup > 0 and n <= warmup:
        return 0.0 + (max_lr - 0.0) * float(n) / float(warmup)
    if n > total:
        return min_lr
    anneal_start = total - decay
    if n <= anneal_start:
        coeff = 1.0
    else:
        ratio = float(n - anneal_start) / float(decay)
        coeff = {"linear": 1.0 - ratio, "cosine": 0.5 * (math.cos(math.pi * ratio) + 1.0),
                 "minus_sqrt": 1.0 - math.sqrt(ratio)}[style]
    return min_lr + coeff * (max_lr - min_lr)


def trainer_lrs(write_recipe, tmp_path, total, train: str, max_steps: bool = True) -> list[float]:
    """The lr of optimizer steps 0..total-1 of tune's CptTrainer, its optimizer and scheduler built by
    transformers' ``create_optimizer_and_scheduler`` from the recipe's arguments (tune.training.arguments) for a
    run of ``total`` steps (`train.max_steps`, or without ``max_steps`` what the epochs come to)."""
    from transformers import TrainingArguments

    from tune.recipe import load_recipe
    from tune.training.arguments import trainer_kwargs
    from tune.training.trainers import CptTrainer

    path = write_recipe("model: {name: tiny-llm-jp-4-8b}\ndata: {datasets: [{path: tune:samples/demo-chat.jsonl}]}\n"
                        f"train: {{{train}" + (f", max_steps: {total}}}\n" if max_steps else "}\n"))
    recipe = load_recipe(path).recipe
    kwargs = {k: v for k, v in trainer_kwargs(recipe, tmp_path).items() if k not in ("max_length", "router_aux_loss_coef")}
    trainer = CptTrainer(model=torch.nn.Linear(2, 2), args=TrainingArguments(**kwargs))
    trainer.create_optimizer_and_scheduler(num_training_steps=total)
    values = []
    for _ in range(total):
        values.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    return values


# LLM-jp's published continued pre-training: lr 3e-4 -> 0, warmup 50, 500 iterations, WSD over the last 250
CASES = [pytest.param(3e-4, 0.0, id="llmjp-cpt-min0"), pytest.param(3e-4, 3e-5, id="min3e-5")]


@pytest.mark.parametrize("style", ["minus_sqrt", "linear", "cosine"])
@pytest.mark.parametrize("max_lr, min_lr", CASES)
def test_the_lr_at_each_phase_boundary_is_megatrons(write_recipe, tmp_path, style, max_lr, min_lr):
    warmup, total, decay = 50, 500, 250
    lrs = trainer_lrs(write_recipe, tmp_path, total, f"scheduler: wsd, decay_style: {style}, decay_steps: {decay}, "
                      f"warmup_steps: {warmup}, lr: {max_lr}, min_lr: {min_lr}")
    for n in (0, 1, warmup - 1, warmup, warmup + 1, 200, total - decay, total - decay + 1, 375, total - 2, total - 1):
        expected = megatron_lr(n, max_lr=max_lr, min_lr=min_lr, warmup=warmup, total=total, decay=decay, style=style)
        assert lrs[n] == pytest.approx(expected, rel=1e-12, abs=1e-20), n
    assert lrs[0] == 0.0 and lrs[warmup] == pytest.approx(max_lr) and lrs[total - decay] == pytest.approx(max_lr)
    assert min_lr < lrs[total - 1] < lrs[total - decay + 1] < max_lr  # the floor itself comes after the last step


def test_a_decay_fraction_is_rounded_down_and_follows_the_same_form(write_recipe, tmp_path):
    lrs = trainer_lrs(write_recipe, tmp_path, 37, "scheduler: wsd, decay_fraction: 0.3, warmup_steps: 4, lr: 1e-3, min_lr: 1e-4")
    decay = 11  # floor(0.3 x 37)
    expected = [megatron_lr(n, max_lr=1e-3, min_lr=1e-4, warmup=4, total=37, decay=decay, style="minus_sqrt")
                for n in range(37)]
    assert lrs == pytest.approx(expected, rel=1e-12, abs=1e-20)
    assert lrs[37 - decay] == pytest.approx(1e-3) and lrs[37 - decay + 1] < 1e-3


def test_a_decay_longer_than_the_steps_after_warmup_is_refused_with_the_keys(write_recipe, tmp_path, recipe_error):
    # steps known when the recipe is read (`train.max_steps`): `tune validate` refuses it
    text = recipe_error(write_recipe("model: {name: tiny-llm-jp-4-8b}\ndata: {datasets: [{path: tune:samples/demo-chat.jsonl}]}\n"
                                     "train: {scheduler: wsd, decay_fraction: 0.95, warmup_steps: 50, max_steps: 500}\n"))
    assert "recipe.yaml:3:" in text and "the decay (475 steps) is longer than the 500 steps of `train.max_steps` less the 50" in text
    # steps known once the data is (`train.epochs`): the trainer refuses before its first step
    with pytest.raises(UserError, match=r"train.decay_steps: 460 is longer than the run's steps after warmup.*"
                                        r"500 optimizer steps and train.warmup_steps: 50, which leaves 450"):
        trainer_lrs(write_recipe, tmp_path, 500, "scheduler: wsd, decay_steps: 460, warmup_steps: 50", max_steps=False)


def test_transformers_own_wsd_warms_up_from_the_floor_which_is_why_tune_builds_its_own():
    """Pins the reason of tune.training.wsd_schedule: if transformers' warmup_stable_decay ever warms up from 0,
    tune could hand the schedule to it."""
    from transformers import get_wsd_schedule

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
    schedule = get_wsd_schedule(optimizer, num_warmup_steps=50, num_decay_steps=250, num_training_steps=500,
                                decay_type="1-sqrt", min_lr_ratio=0.1)
    values = []
    for _ in range(500):
        values.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    megatron = [megatron_lr(n, max_lr=3e-4, min_lr=3e-5, warmup=50, total=500, decay=250, style="minus_sqrt")
                for n in range(500)]
    assert values[0] == pytest.approx(3e-5) and megatron[0] == 0.0  # differs in the warmup
    assert values[50:] == pytest.approx(megatron[50:], rel=1e-12)  # agrees after it
