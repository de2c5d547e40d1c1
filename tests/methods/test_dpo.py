"""DPO through TRL's DPOTrainer, full and LoRA, on both tiny twins.

Pins: TRL's list of DPO losses (our schema's Literal must equal it), and the workaround in
tune/training/dpo_trainer.py (TRL 1.16 cannot take pre-tokenized pairs; when it can, the pin fails).
"""

import gc
import inspect
import json
import math
import re
from pathlib import Path

import pytest
import torch

from tune.recipe import load_recipe
from tune.config.schema import DPO_LOSS_TYPES
from tune.errors import UserError
from tune.methods.run import run_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
# small, fast, fp32; logs every step so first and last records can be compared
QUICK = ["train.precision=fp32", "logging.logging_steps=1", "train.per_device_batch_size=2", "data.max_seq_len=256"]


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def quick_recipe(name: str, tmp_path: Path, *extra: str):
    return load_recipe(RECIPES / name, [*QUICK, f"output.dir={tmp_path / 'run'}", *extra])


# ---- schema and arguments (no training) ---------------------------------------------------------

def test_our_loss_types_are_exactly_trls():
    from trl import DPOConfig, DPOTrainer

    branches = re.findall(r'loss_type == "(\w+)"', inspect.getsource(DPOTrainer._compute_loss))
    documented = re.findall(r"`'(\w+)'`", DPOConfig.__dataclass_fields__["loss_type"].metadata["help"])
    assert sorted(set(branches)) == sorted(DPO_LOSS_TYPES), "TRL's DPOTrainer losses changed: update DpoLossType"
    assert sorted(documented) == sorted(DPO_LOSS_TYPES)


def test_unknown_loss_type_is_refused_with_the_key_and_a_suggestion():
    with pytest.raises(UserError) as err:
        load_recipe(RECIPES / "tiny/dpo.yaml", ["method.dpo.loss_type=sigmod"])
    assert "method.dpo.loss_type" in str(err.value) and "did you mean 'sigmoid'" in str(err.value)
    with pytest.raises(UserError, match="label_smoothing"):
        load_recipe(RECIPES / "tiny/dpo.yaml", ["method.dpo.loss_type=exo_pair"])


@pytest.mark.parametrize("loss_type", DPO_LOSS_TYPES)
def test_every_trl_loss_is_accepted_and_reaches_dpo_config(loss_type, tmp_path):
    from tune.training.arguments import dpo_config

    smoothing = ["method.dpo.label_smoothing=0.001"] if loss_type == "exo_pair" else []
    recipe = load_recipe(RECIPES / "tiny/dpo.yaml", [f"method.dpo.loss_type={loss_type}", *smoothing]).recipe
    config = dpo_config(recipe, tmp_path)
    assert config.loss_type == [loss_type] and config.beta == 0.5


def test_dpo_and_sft_configs_share_every_common_argument(tmp_path):
    from tune.training.arguments import dpo_config, sft_config, trainer_kwargs

    recipe = load_recipe(RECIPES / "llm-jp-4-32b-a3b/dpo.yaml", ["train.precision=fp32"]).recipe
    dpo, sft = dpo_config(recipe, tmp_path), sft_config(recipe, tmp_path)
    for key in trainer_kwargs(recipe, tmp_path):
        assert getattr(dpo, key) == getattr(sft, key), key
    # the floor goes to transformers as a rate of lr (min_lr / lr), which ZeRO-3's optimizer also serves
    assert dpo.learning_rate == 9e-7 and dpo.lr_scheduler_kwargs["min_lr_rate"] == pytest.approx(5e-7 / 9e-7)
    assert dpo.router_aux_loss_coef == 0.01 and dpo.max_length == 4096
    assert (dpo.beta, dpo.loss_type, dpo.label_smoothing) == (0.5, ["sigmoid"], 0.0)


@pytest.mark.parametrize("name, processes", [("llm-jp-4-8b/dpo.yaml", 8), ("llm-jp-4-8b/dpo-lora.yaml", 1),
                                             ("llm-jp-4-32b-a3b/dpo.yaml", 16)])
def test_real_dpo_recipes_carry_llmjp_values(name, processes):
    recipe = load_recipe(RECIPES / name).recipe
    train = recipe.train
    assert recipe.method.name == "dpo" and recipe.method.dpo.beta == 0.5
    assert train.per_device_batch_size * train.grad_accumulation * processes == 256
    assert recipe.launch.nodes * recipe.launch.processes_per_node == processes
    assert (train.epochs, recipe.data.max_seq_len) == (2, 4096)
    if recipe.method.peft == "none":
        assert (train.lr, train.min_lr) == (9e-7, 5e-7)
    assert all("dpo" in d.card for d in recipe.data.datasets)


@pytest.mark.parametrize("name", ["llm-jp-4-32b-a3b/dpo.yaml", "tiny/moe-dpo.yaml"])
def test_moe_dpo_recipes_write_the_router_settings_out(name):
    text = (RECIPES / name).read_text()
    assert "router_aux_loss_coef: 0.01" in text and "output_router_logits: true" in text
    model = load_recipe(RECIPES / name).recipe.model
    assert (model.router_aux_loss_coef, model.output_router_logits) == (0.01, True)


def test_sft_data_with_method_dpo_is_refused_at_load_naming_the_dataset(tmp_path, recipe_error):
    text = recipe_error(RECIPES / "tiny/dpo.yaml", [
        f"output.dir={tmp_path / 'run'}",
        "data.datasets=[{card: ac-self-inst, use: samples}, {card: oasst2-33k-ja, use: samples}]",
    ])
    assert text == ("command-line override `data.datasets=[{card: ac-self-inst, use: samples}, {card: oasst2-33k-ja, "
                    "use: samples}]`: data.datasets.1: card 'oasst2-33k-ja' holds sft rows, and method `dpo` trains on "
                    "preference pairs (preference cards, or `format: preference` files); expected a dataset of that kind, "
                    "or another method.name")


# ---- the trainer TRL builds (no training) ---------------------------------------------------------

def _models_alive() -> int:
    """Causal LMs (whole models, not their inner backbones) alive in this process."""
    from transformers import PreTrainedModel

    gc.collect()
    return sum(isinstance(o, PreTrainedModel) and type(o).__name__.endswith("ForCausalLM") for o in gc.get_objects())


@pytest.mark.slow
def test_trl_scores_exactly_our_answer_tokens_and_lora_keeps_no_reference_copy(tmp_path):
    from trl import DPOTrainer

    from tune.data.preference_samples import COLUMNS
    from tune.methods.dpo import build_dpo_trainer

    before = _models_alive()
    setup = build_dpo_trainer(quick_recipe("tiny/dpo-lora.yaml", tmp_path).recipe, tmp_path / "run", printer=lambda _: None)
    trainer = setup.trainer
    assert trainer.ref_model is None and _models_alive() - before == 1  # reference = adapters disabled

    # TRL keeps our pre-tokenized rows as they are ...
    given = setup.inputs.data.train.select_columns(list(COLUMNS))
    assert trainer.train_dataset.column_names == list(COLUMNS) and trainer.train_dataset[:] == given[:]
    # ... and its collator's completion mask covers exactly chosen_ids / rejected_ids
    rows = [trainer.train_dataset[i] for i in range(4)]
    batch = trainer.data_collator(rows)
    for i, row in enumerate(rows):
        for part, index in (("chosen_ids", i), ("rejected_ids", i + len(rows))):
            ids, mask = batch["input_ids"][index], batch["completion_mask"][index].bool()
            assert ids[mask].tolist() == row[part]
            assert ids[: len(row["prompt_ids"])].tolist() == row["prompt_ids"]
            assert not mask[: len(row["prompt_ids"])].any()
            assert batch["attention_mask"][index].sum() == len(row["prompt_ids"]) + len(row[part])

    # pin: TRL's own preparation still cannot take pre-tokenized pairs (drop the override when it can)
    with pytest.raises(KeyError):
        DPOTrainer._prepare_dataset(trainer, given, setup.inputs.tokenizer, trainer.args, "train")


@pytest.mark.slow
def test_full_dpo_reference_is_a_frozen_copy_of_the_start(tmp_path):
    from tune.methods.dpo import build_dpo_trainer

    before = _models_alive()
    setup = build_dpo_trainer(quick_recipe("tiny/dpo.yaml", tmp_path).recipe, tmp_path / "run", printer=lambda _: None)
    assert _models_alive() - before == 2
    policy, reference = setup.trainer.model, setup.trainer.ref_model
    assert reference is not None and reference is not policy
    assert not any(p.requires_grad for p in reference.parameters())
    for (name, p), (ref_name, r) in zip(policy.named_parameters(), reference.named_parameters()):
        assert name == ref_name and p.data_ptr() != r.data_ptr() and torch.equal(p, r)


# ---- training ---------------------------------------------------------------------------------------

CASES = {
    "dense-full": ("tiny/dpo.yaml", []),
    "dense-lora": ("tiny/dpo-lora.yaml", []),
    "moe-full": ("tiny/moe-dpo.yaml", []),
    "moe-lora": ("tiny/moe-dpo.yaml", ["method.peft=lora", "method.lora.r=16", "method.lora.dropout=0.0",
                                       "train.lr=3e-3", "train.min_lr=3e-4"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_dpo_trains_margins_grow_and_final_loads_without_tune(case, tmp_path, capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    name, extra = CASES[case]
    loaded = quick_recipe(name, tmp_path, "train.max_steps=8", "train.warmup_steps=1", *extra)
    outcome = run_recipe(loaded)
    lines = capsys.readouterr().out.splitlines()
    run_dir = Path(loaded.recipe.output.dir)

    log = records(run_dir)
    first, last = log[0], log[-1]
    assert first["step"] == 1 and last["step"] == 8
    assert first["rewards/margins"] == 0.0 and first["rewards/accuracies"] == 0.0  # policy == reference
    assert last["rewards/margins"] > 0.5, [r["rewards/margins"] for r in log]
    assert last["rewards/accuracies"] >= 0.99, [r["rewards/accuracies"] for r in log]
    assert last["loss"] < 0.6 * first["loss"], [r["loss"] for r in log]
    assert all({"rewards/chosen", "rewards/rejected"} <= set(r) for r in log)
    assert any("margin " in line and "| acc " in line for line in lines)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["method"] == "dpo" and manifest["final_reward_margin"] == pytest.approx(last["rewards/margins"])

    moe = "moe" in case
    if moe:  # the router aux loss is added to the DPO loss and logged apart
        assert all(math.isfinite(r["aux_loss"]) and r["aux_loss"] > 0 for r in log)
        assert first["dpo_loss"] == pytest.approx(math.log(2), abs=1e-6)
        assert all(r["dpo_loss"] == pytest.approx(r["loss"] - 0.01 * r["aux_loss"]) for r in log)
    else:
        assert first["loss"] == pytest.approx(math.log(2), abs=1e-6) and "aux_loss" not in first

    final = run_dir / "final"
    ids = torch.tensor([[1, 10, 20, 30, 40, 50, 60]])
    outcome.model.eval()
    with torch.no_grad():
        trained = outcome.model(ids).logits
        if loaded.recipe.method.peft == "none":
            reloaded = AutoModelForCausalLM.from_pretrained(final)
        else:
            base = json.loads((final / "adapter_config.json").read_text())["base_model_name_or_path"]
            reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), final)
        assert torch.allclose(trained, reloaded.eval()(ids).logits, atol=1e-5)


@pytest.mark.slow
def test_resumed_full_dpo_keeps_the_starting_reference(tmp_path):
    """Resuming loads the policy from the checkpoint but the reference from the start: steps after
    the restart match an uninterrupted run (a reference reloaded from the checkpoint would not)."""
    import shutil

    loaded = quick_recipe("tiny/dpo.yaml", tmp_path, "train.max_steps=4", "train.warmup_steps=1",
                          "output.save_steps=2", "output.save_total_limit=3")
    run_recipe(loaded)
    run_dir = Path(loaded.recipe.output.dir)
    uninterrupted = {r["step"]: r for r in records(run_dir)}
    (run_dir / "manifest.json").unlink()
    shutil.rmtree(run_dir / "final")
    shutil.rmtree(run_dir / "checkpoints" / "checkpoint-4")
    run_recipe(loaded)
    resumed = {r["step"]: r for r in records(run_dir)}
    assert sorted(resumed) == [1, 2, 3, 4]
    for step in (3, 4):
        for key in ("loss", "rewards/margins"):
            assert resumed[step][key] == pytest.approx(uninterrupted[step][key], abs=1e-5), (step, key)
    assert uninterrupted[3]["rewards/margins"] != pytest.approx(0.0, abs=1e-3)
