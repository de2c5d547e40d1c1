"""Continued pre-training (`method.name: cpt`) on the bundled tiny corpora: the shipped tiny recipes learn,
log held-out perplexity (and the MoE router losses) and leave a model plain transformers loads; an
interrupted run resumes at the next unseen sample with exactly the losses of an uninterrupted run."""

import json
import math
import shutil
from pathlib import Path

import pytest

from tune.methods.run import run_recipe
from tune.recipe import load_recipe
from tune.training.resume import COMPLETE

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def train_losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in records(run_dir) if "loss" in r}


@pytest.mark.parametrize("name", ["cpt.yaml", "moe-pretrain.yaml"])
def test_the_tiny_cpt_recipes_learn_as_shipped(name, tmp_path):
    loaded = load_recipe(REPO / "recipes" / "tiny" / name, [f"output.dir={tmp_path / 'run'}"])
    recipe = loaded.recipe
    assert recipe.method.name == "cpt" and recipe.train.scheduler == "wsd"
    run_recipe(loaded)
    run_dir = tmp_path / "run"
    losses = train_losses(run_dir)
    steps = sorted(losses)
    assert steps[-1] == recipe.train.max_steps
    first, last = losses[steps[0]], losses[steps[-1]]
    assert all(math.isfinite(v) for v in losses.values())
    assert last < first - 1.0, f"the loss did not fall: {first:.3f} -> {last:.3f}"
    names = [c.name or Path(c.prefix).name for c in recipe.data.corpora]
    evals = [r for r in records(run_dir) if any(k.endswith("_perplexity") for k in r)]
    assert evals, "no held-out perplexity was logged"
    for corpus in names:
        values = [r[f"eval_{corpus}_perplexity"] for r in evals if f"eval_{corpus}_perplexity" in r]
        assert values and all(math.isfinite(v) and v > 1 for v in values), corpus
        assert values[-1] < values[0], (corpus, values)  # held-out text gets likelier as it learns
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["method"] == "cpt" and manifest["steps"] == recipe.train.max_steps
    assert set(manifest["final_eval_perplexities"]) >= set(names)
    if recipe.model.output_router_logits:
        logged = [r for r in records(run_dir) if "loss" in r]
        assert all(math.isfinite(r["aux_loss"]) and r["aux_loss"] > 0 for r in logged)
        assert all(math.isfinite(r["z_loss"]) and r["z_loss"] > 0 for r in logged)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(run_dir / "final")
    assert model.config.architectures[0] == ("Qwen3MoeForCausalLM" if "moe" in name else "LlamaForCausalLM")


def interrupt_after(run_dir: Path, step: int) -> None:
    """Leave ``run_dir`` as a run killed right after writing checkpoint-``step`` (later ones cut short)."""
    for path in (run_dir / "manifest.json", run_dir / "final"):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
    for checkpoint in (run_dir / "checkpoints").iterdir():
        if checkpoint.name.startswith("checkpoint-") and int(checkpoint.name.split("-")[1]) > step:
            (checkpoint / COMPLETE).unlink()


@pytest.mark.parametrize("name", ["cpt.yaml", "moe-pretrain.yaml"])
def test_a_resumed_cpt_run_continues_at_the_next_unseen_sample(name, tmp_path, capsys):
    overrides = [f"output.dir={tmp_path / 'run'}", "train.max_steps=6", "train.warmup_steps=1",
                 "train.decay_steps=2", "train.eval_steps=null", "output.save_steps=3", "output.save_total_limit=3",
                 "logging.logging_steps=1", "train.precision=fp32"]
    loaded = load_recipe(REPO / "recipes" / "tiny" / name, overrides)
    run_recipe(loaded)
    run_dir = tmp_path / "run"
    uninterrupted = train_losses(run_dir)
    interrupt_after(run_dir, 3)
    capsys.readouterr()
    run_recipe(loaded)
    out = capsys.readouterr().out
    per_step = loaded.recipe.train.global_batch_size or (
        loaded.recipe.train.per_device_batch_size * loaded.recipe.train.grad_accumulation)
    assert f"data: continuing at sample {3 * per_step:,} of {6 * per_step:,} (step 3)" in out
    resumed = train_losses(run_dir)
    assert sorted(resumed) == sorted(uninterrupted) == [1, 2, 3, 4, 5, 6]
    for step in (4, 5, 6):
        assert resumed[step] == pytest.approx(uninterrupted[step], abs=1e-6), (step, resumed, uninterrupted)


def test_lora_continued_pre_training_trains_adapters_that_peft_loads(tmp_path):
    loaded = load_recipe(REPO / "recipes" / "tiny" / "cpt.yaml",
                         [f"output.dir={tmp_path / 'run'}", "method.peft=lora", "train.max_steps=6", "train.warmup_steps=1",
                          "train.decay_steps=2", "train.eval_steps=null", "logging.logging_steps=1"])
    run_recipe(loaded)
    losses = train_losses(tmp_path / "run")
    assert sorted(losses) == [1, 2, 3, 4, 5, 6] and losses[6] < losses[1] - 0.3, losses
    from peft import AutoPeftModelForCausalLM

    model = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "run" / "final")
    assert any("lora_A" in name for name, _ in model.named_parameters())
