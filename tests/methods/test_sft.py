"""Tiny SFT runs, full and LoRA, end to end: loss falls, outputs load without tune, logits match."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tune.recipe import load_recipe
from tune.methods.run import run_recipe

pytestmark = pytest.mark.slow


def losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def probe_ids(tokenizer):
    messages = [{"role": "user", "content": "日本の首都は？"}, {"role": "assistant", "content": "東京です。"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, conversation_start_date="2026-04-01")
    return torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])


def test_lora_overfits_and_saved_adapter_gives_same_logits_in_plain_peft(overfit_recipe, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    loaded = load_recipe(overfit_recipe("tiny-llm-jp-4-8b", "lora", lr=5e-3, steps=30))
    outcome = run_recipe(loaded)
    run_dir = Path(loaded.recipe.output.dir)
    curve = losses(run_dir)
    assert curve[-1] < 0.35 * curve[0], curve

    final = run_dir / "final"
    assert (final / "adapter_config.json").exists() and (final / "adapter_model.safetensors").exists()
    ids = probe_ids(outcome.tokenizer)
    outcome.model.eval()
    with torch.no_grad():
        trained = outcome.model(ids).logits
        base = AutoModelForCausalLM.from_pretrained(json.loads((final / "adapter_config.json").read_text())["base_model_name_or_path"])
        reloaded = PeftModel.from_pretrained(base, final).eval()(ids).logits
    assert torch.allclose(trained, reloaded, atol=1e-5), (trained - reloaded).abs().max()

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["steps"] == 30 and manifest["seed"] == 42
    assert manifest["final_train_loss"] == pytest.approx(curve[-1])
    assert manifest["tokens_per_s"] > 0 and manifest["packages"]["trl"]
    assert len(manifest["data"]["fingerprint"]) == 24 and manifest["data"]["report"]["datasets"][0]["samples"] == 12


def test_full_sft_overfits_and_final_model_loads_in_plain_transformers(overfit_recipe):
    loaded = load_recipe(overfit_recipe("tiny-llm-jp-4-8b", "none", lr=2e-3, steps=30))
    run_recipe(loaded)
    run_dir = Path(loaded.recipe.output.dir)
    curve = losses(run_dir)
    assert curve[-1] < 0.35 * curve[0], curve

    check = (
        "import sys, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"path = {str(run_dir / 'final')!r}\n"
        "tok = AutoTokenizer.from_pretrained(path)\n"
        "model = AutoModelForCausalLM.from_pretrained(path)\n"
        "ids = tok.apply_chat_template([{'role': 'user', 'content': 'hi'}], add_generation_prompt=True, return_tensors='pt', return_dict=True)\n"
        "out = model(**ids).logits\n"
        "assert 'tune' not in sys.modules\n"
        "print(type(model).__name__, out.shape[-1], tok.convert_ids_to_tokens(2))\n"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["LlamaForCausalLM", "4096", "<|return|>"]


def test_resolved_recipe_in_run_folder_reproduces_the_run(overfit_recipe, tmp_path):
    loaded = load_recipe(overfit_recipe("tiny-llm-jp-4-8b", "lora", lr=5e-3, steps=4))
    run_recipe(loaded)
    first = Path(loaded.recipe.output.dir)
    again = load_recipe(first / "recipe.yaml", [f"output.dir={tmp_path / 'again'}"])
    assert again.recipe.model_dump(exclude={"output"}) == loaded.recipe.model_dump(exclude={"output"})
    run_recipe(again)
    assert losses(tmp_path / "again") == losses(first)


def test_second_run_into_a_finished_folder_is_refused(overfit_recipe):
    from tune.errors import UserError

    loaded = load_recipe(overfit_recipe("tiny-llm-jp-4-8b", "lora", lr=5e-3, steps=1))
    run_recipe(loaded)
    with pytest.raises(UserError, match="already holds a finished run"):
        run_recipe(loaded)
