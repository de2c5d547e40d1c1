"""`tune merge`: merged weights give the adapter model's logits, load in plain transformers in a
process that never imports tune, keep the hub's per-expert MoE layout, and bad input is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

TWINS = ("tiny-llm-jp-4-8b", "tiny-llm-jp-4-32b-a3b")
from tune.cli import main

pytestmark = pytest.mark.slow

PROBE = [{"role": "user", "content": "日本の首都は？"}, {"role": "assistant", "content": "東京です。"}]


def probe_ids(tokenizer) -> torch.Tensor:
    text = tokenizer.apply_chat_template(PROBE, tokenize=False, conversation_start_date="2026-04-01")
    return torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])


def adapter_logits(run_dir: Path, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of the run's base with its adapter applied (unmerged), and of the bare base."""
    from tune.export.merge import load_tuned
    from tune.export.run_folder import locate_base, read_run

    run = read_run(run_dir)
    model = load_tuned(run, locate_base(run), "float32", merge=False)
    with torch.no_grad():
        tuned = model(ids).logits
        with model.disable_adapter():
            base = model(ids).logits
    return tuned, base


def safetensors_keys(folder: Path) -> set[str]:
    from safetensors import safe_open

    keys = set()
    for path in folder.glob("*.safetensors"):
        with safe_open(path, "pt") as handle:
            keys |= set(handle.keys())
    return keys


@pytest.mark.parametrize("twin", TWINS)
def test_merged_model_gives_the_adapter_models_logits(lora_runs, merged, twin):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(merged[twin])
    ids = probe_ids(tokenizer)
    tuned, base = adapter_logits(lora_runs[twin], ids)
    with torch.no_grad():
        exported = AutoModelForCausalLM.from_pretrained(merged[twin], dtype=torch.float32)(ids).logits
    assert (tuned - base).abs().max() > 1e-4  # the adapter changed the model: the comparison means something
    assert (exported - tuned).abs().max() < 5e-5, (exported - tuned).abs().max()  # fp32 rounding of W + BA: ~1.5e-5 measured


def test_export_loads_in_a_fresh_process_that_never_imports_tune(lora_runs, merged, tmp_path):
    from tune.export.merge import load_run_tokenizer
    from tune.export.run_folder import read_run

    cases = {}
    for twin in TWINS:
        tokenizer = load_run_tokenizer(read_run(lora_runs[twin]))
        ids = probe_ids(tokenizer)
        tuned, _ = adapter_logits(lora_runs[twin], ids)
        torch.save({"ids": ids, "logits": tuned}, tmp_path / f"{twin}.pt")
        expected_text = tokenizer.apply_chat_template(PROBE[:1], tokenize=False, add_generation_prompt=True,
                                                      conversation_start_date="2026-04-01")
        cases[twin] = {"dir": str(merged[twin]), "reference": str(tmp_path / f"{twin}.pt"), "text": expected_text}
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    check = f"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
for twin, case in json.load(open({str(tmp_path / 'cases.json')!r})).items():
    model = AutoModelForCausalLM.from_pretrained(case["dir"], dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(case["dir"])
    reference = torch.load(case["reference"])
    with torch.no_grad():
        logits = model(reference["ids"]).logits
    assert (logits - reference["logits"]).abs().max() < 5e-5, (twin, (logits - reference["logits"]).abs().max())
    text = tokenizer.apply_chat_template([{{"role": "user", "content": "日本の首都は？"}}], tokenize=False,
                                         add_generation_prompt=True, conversation_start_date="2026-04-01")
    assert text == case["text"], (text, case["text"])
    config = model.generation_config
    print(twin, type(model).__name__, config.eos_token_id, config.bos_token_id, config.pad_token_id,
          tokenizer.convert_ids_to_tokens(config.eos_token_id))
assert "tune" not in sys.modules and not any(name.startswith("tune.") for name in sys.modules)
assert "peft" not in sys.modules
print("OK")
"""
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[-1] == "OK"
    assert "tiny-llm-jp-4-8b LlamaForCausalLM [2, 13] 1 4 ['<|return|>', '<|call|>']" in lines
    assert "tiny-llm-jp-4-32b-a3b Qwen3MoeForCausalLM [2, 13] 1 4 ['<|return|>', '<|call|>']" in lines
    for twin in TWINS:
        files = {p.name for p in merged[twin].iterdir()}
        assert {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json",
                "config.json", "README.md", "recipe.yaml"} <= files
        assert not {"adapter_config.json", "adapter_model.safetensors", "training_args.bin"} & files


def test_moe_export_is_in_the_hubs_per_expert_layout(merged):
    keys = safetensors_keys(merged["tiny-llm-jp-4-32b-a3b"])
    for layer in range(2):
        for expert in range(8):
            for proj in ("gate_proj", "up_proj", "down_proj"):
                assert f"model.layers.{layer}.mlp.experts.{expert}.{proj}.weight" in keys
        assert f"model.layers.{layer}.mlp.gate.weight" in keys
    assert not [k for k in keys if "gate_up_proj" in k or k.endswith("experts.down_proj")]
    assert not [k for k in keys | safetensors_keys(merged["tiny-llm-jp-4-8b"]) if "lora" in k or "base_layer" in k]


def test_full_run_is_exported_as_trained(full_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "full-export"
    assert main(["merge", str(full_run), "--out", str(out)]) == 0
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = probe_ids(tokenizer)
    with torch.no_grad():
        exported = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)(ids).logits
        trained = AutoModelForCausalLM.from_pretrained(full_run / "final", dtype=torch.float32)(ids).logits
    assert torch.equal(exported, trained)
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == [2, 13]
    assert "full fine-tuning" in (out / "README.md").read_text()


def test_qlora_run_merges_onto_the_unquantized_base_in_the_base_dtype(qlora_run, tmp_path):
    """The merge loads the base unquantized (no bitsandbytes layer, no quantization_config) in
    its stored dtype and folds the QLoRA adapter in."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "qlora-export"
    assert main(["merge", str(qlora_run), "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"  # the twin's stored dtype
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = probe_ids(tokenizer)
    tuned, base = adapter_logits(qlora_run, ids)
    with torch.no_grad():
        exported = AutoModelForCausalLM.from_pretrained(out)(ids).logits
    assert (tuned - base).abs().max() > 1e-4
    assert (exported - tuned).abs().max() < 5e-5
    card = (out / "README.md").read_text()
    assert "QLoRA" in card and "unquantized base" in card and "nf4" in card


def test_dtype_flag_sets_the_saved_dtype(lora_runs, tmp_path):
    from safetensors import safe_open

    out = tmp_path / "bf16"
    assert main(["merge", str(lora_runs["tiny-llm-jp-4-8b"]), "--out", str(out), "--dtype", "bfloat16"]) == 0
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    with safe_open(out / "model.safetensors", "pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.bfloat16}


def test_refusals_name_the_problem_and_the_fix(lora_runs, tmp_path, capsys):
    run = lora_runs["tiny-llm-jp-4-8b"]

    def refused(*argv) -> str:
        capsys.readouterr()
        assert main(["merge", *map(str, argv)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err
        return err

    assert "not a tune run folder" in refused(tmp_path, "--out", tmp_path / "a")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copyfile(run / "recipe.yaml", unfinished / "recipe.yaml")
    assert "has not finished" in refused(unfinished, "--out", tmp_path / "b")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "x").write_text("x")
    assert "already exists and is not empty" in refused(run, "--out", occupied)

    moved = tmp_path / "moved-base"
    shutil.copytree(run, moved)
    adapter = json.loads((moved / "final" / "adapter_config.json").read_text())
    twin_folder = adapter["base_model_name_or_path"]
    adapter["base_model_name_or_path"] = "someone/missing-model"
    (moved / "final" / "adapter_config.json").write_text(json.dumps(adapter))
    recipe = yaml.safe_load((moved / "recipe.yaml").read_text())
    recipe["model"]["name"] = "someone/missing-model"
    (moved / "recipe.yaml").write_text(yaml.safe_dump(recipe, allow_unicode=True))
    err = refused(moved, "--out", tmp_path / "c")
    assert "someone/missing-model" in err and "--base DIR" in err
    assert not (tmp_path / "c").exists()
    assert "no config.json" in refused(moved, "--out", tmp_path / "c", "--base", tmp_path)
    assert main(["merge", str(moved), "--out", str(tmp_path / "c"), "--base", twin_folder]) == 0
    assert (tmp_path / "c" / "model.safetensors").is_file()
