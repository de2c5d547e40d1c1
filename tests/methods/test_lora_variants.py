"""DoRA and rsLoRA (`method.lora.dora`, `method.lora.rslora`, peft's `use_dora` / `use_rslora`) train
end to end on the tiny twins, SFT and DPO, and every finished run leaves its training curve in the
run folder and in `final/`."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from tune.methods.run import run_recipe
from tune.recipe import load_recipe

pytestmark = pytest.mark.slow

SVG = "{http://www.w3.org/2000/svg}"


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def curve_points(run_dir: Path) -> dict[str, int]:
    """Points per series of the run's training_curve.svg, after checking final/ holds the same picture."""
    picture = run_dir / "training_curve.svg"
    assert (run_dir / "final" / "training_curve.svg").read_bytes() == picture.read_bytes()
    root = ET.parse(picture).getroot()
    return {line.get("data-series"): len(line.get("points").split()) for line in root.iter(f"{SVG}polyline")}


@pytest.mark.parametrize("peft, variant", [("lora", "dora"), ("lora", "rslora"), ("qlora", "dora")])
def test_lora_variant_trains_saves_its_flag_and_draws_its_curve(peft, variant, overfit_recipe):
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    loaded = load_recipe(overfit_recipe("tiny-llm-jp-4-8b", peft, lr=5e-3, steps=8), [f"method.lora.{variant}=true"])
    outcome = run_recipe(loaded)
    run_dir = Path(loaded.recipe.output.dir)
    losses = [r["loss"] for r in metrics(run_dir)]
    assert losses[-1] < 0.8 * losses[0], losses

    final = run_dir / "final"
    config = json.loads((final / "adapter_config.json").read_text())
    assert (config["use_dora"], config["use_rslora"]) == (variant == "dora", variant == "rslora")
    with safe_open(final / "adapter_model.safetensors", "pt") as weights:
        magnitudes = [key for key in weights.keys() if "lora_magnitude_vector" in key]
    assert len(magnitudes) == (7 * 2 if variant == "dora" else 0)  # one per adapted Linear: 7 per layer, 2 layers
    assert curve_points(run_dir) == {"loss": len(losses), "lr": len(losses)}

    if peft == "lora":  # the saved adapter, variant included, gives the trained model's logits in plain peft
        ids = torch.tensor([[5, 17, 230, 41, 9, 300]])
        outcome.model.eval()
        with torch.no_grad():
            trained = outcome.model(ids).logits
            reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"]),
                                                 final).eval()(ids).logits
        assert torch.allclose(trained, reloaded, atol=1e-5), (trained - reloaded).abs().max()


def test_dpo_with_dora_trains_and_its_curve_shows_reward_margin_and_accuracy(tmp_path):
    loaded = load_recipe("tiny/dpo-lora", ["train.precision=fp32", "logging.logging_steps=1", "train.max_steps=4",
                                           "train.per_device_batch_size=2", "data.max_seq_len=256",
                                           "method.lora.dora=true", f"output.dir={tmp_path / 'run'}"])
    run_recipe(loaded)
    run_dir = Path(loaded.recipe.output.dir)
    records = metrics(run_dir)
    assert len(records) == 4 and all("rewards/margins" in r for r in records)
    assert json.loads((run_dir / "final" / "adapter_config.json").read_text())["use_dora"] is True
    assert curve_points(run_dir) == {"loss": 4, "lr": 4, "rewards/margins": 4, "rewards/accuracies": 4}
