"""The model card of a run's adapter folder and of its export: base, method, datasets with their
licences, hyper-parameters and the run's measured figures, all taken from the recipe, the manifest
and the dataset cards; the training curve shown when its picture is next to the card."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from tune.recipe import load_recipe
from tune.data.cards import load_card
from tune.export.run_folder import read_run
from tune.training.model_card import render_card, write_card


def table_value(card: str, key: str) -> str:
    found = re.search(rf"^\| {re.escape(key)} \| (.+?) \|$", card, re.MULTILINE)
    assert found, f"no row {key!r} in the card"
    return found.group(1)


@pytest.mark.slow
def test_card_of_a_merged_run_states_data_licences_hyperparameters_and_measured_figures(lora_runs, merged):
    twin = "tiny-llm-jp-4-32b-a3b"
    card = (merged[twin] / "README.md").read_text()
    run = read_run(lora_runs[twin])
    manifest = json.loads((lora_runs[twin] / "manifest.json").read_text())

    for entry in run.recipe.data.datasets:
        if entry.card:
            shipped = load_card(entry.card)
            row = next(line for line in card.splitlines() if f"card `{entry.card}`" in line)
            assert f"| {shipped.license} |" in row
            assert "bundled sample rows only" in row  # the recipe trained on samples, not the real set
        else:
            assert f"`{entry.path}`" in card
    assert "no redistribution of the data itself" in card  # AnswerCarefully's terms

    assert float(table_value(card, "final train loss")) == pytest.approx(manifest["final_train_loss"], abs=5e-5)
    assert float(table_value(card, "final eval loss")) == pytest.approx(manifest["final_eval_loss"], abs=5e-5)
    assert table_value(card, "optimizer steps") == str(manifest["steps"]) == "3"
    assert float(table_value(card, "tokens/s")) == pytest.approx(manifest["tokens_per_s"], abs=0.05)
    assert f"tune {manifest['packages']['tune']}, git commit {manifest['git']['commit']}" in card

    train = run.recipe.train
    assert table_value(card, "learning rate").startswith(f"{train.lr:g} -> {train.min_lr:g} (cosine")
    assert table_value(card, "length") == "3 steps"
    assert table_value(card, "batch").endswith("= 4 sequences per step")
    assert table_value(card, "max sequence length") == "256"
    assert table_value(card, "seed") == "42"
    assert table_value(card, "LoRA r / alpha / dropout") == "16 / 32 / 0"
    assert "mlp.experts.gate_up_proj" in table_value(card, "LoRA targets")
    assert "merge_and_unload" in table_value(card, "export")
    assert "conversation_start_date=\"2025-01-15\"" in card and "reasoning_effort=\"high\"" in card


def test_card_for_a_real_preset_names_the_hub_base_and_real_datasets(write_recipe):
    path = write_recipe("""\
        model: {name: llm-jp-4-8b, variant: instruct, revision: abc123}
        method: {name: sft, peft: lora}
        data:
          datasets:
            - {card: oasst2-33k-ja}
            - {card: answercarefully-v2}
          max_seq_len: 4096
          packing: true
        train: {epochs: 2, per_device_batch_size: 2, grad_accumulation: 8}
        launch: {nodes: 2, processes_per_node: 8}
        """)
    recipe = load_recipe(path).recipe
    manifest = {"packages": {"tune": "0.1.0"}, "git": None, "steps": 120, "final_train_loss": 1.23456,
                "final_eval_loss": None, "tokens_per_s": 5000.0}
    card = render_card(recipe, manifest, title="my-model", form="merged", export_dtype="bfloat16")
    front = card.split("---")[1]
    assert "base_model: llm-jp/llm-jp-4-8b-instruct" in front
    assert "- llm-jp/oasst2-33k-ja" in front and "- llm-jp/AnswerCarefully" in front
    assert table_value(card, "variant") == "instruct" and table_value(card, "revision") == "abc123"
    assert table_value(card, "hub id") == "`llm-jp/llm-jp-4-8b-instruct`"
    assert table_value(card, "final train loss") == "1.2346" and table_value(card, "final eval loss") == "-"
    assert table_value(card, "length") == "2 epochs"
    assert table_value(card, "batch") == "2 per device x 8 accumulation x 16 process(es) = 256 sequences per step"
    assert table_value(card, "max sequence length") == "4096 (packed)"
    assert table_value(card, "learning rate").startswith("2e-05 -> 2e-06")  # LLM-jp's published SFT defaults
    assert "git commit unknown" in card
    assert "| apache-2.0 |" in card and "Redistribution of the rows is not allowed." in card
    assert "saved in bfloat16" in table_value(card, "export")


def front_matter(card: str) -> str:
    assert card.startswith("---\n")
    return card.split("---")[1]


@pytest.mark.slow
@pytest.mark.parametrize("twin", ["tiny-llm-jp-4-8b", "tiny-llm-jp-4-32b-a3b"])
def test_adapter_folder_readme_is_tunes_card_not_pefts_template(lora_runs, twin):
    final = lora_runs[twin] / "final"
    card = (final / "README.md").read_text()
    manifest = json.loads((lora_runs[twin] / "manifest.json").read_text())
    assert "Model Card for Model ID" not in card and "More Information Needed" not in card  # peft's template
    assert "library_name: peft" in front_matter(card)
    assert f"# {lora_runs[twin].name}" in card
    assert table_value(card, "LoRA r / alpha / dropout") == "16 / 32 / 0"
    assert table_value(card, "optimizer steps") == str(manifest["steps"])
    assert float(table_value(card, "final train loss")) == pytest.approx(manifest["final_train_loss"], abs=5e-5)
    assert table_value(card, "learning rate").startswith("0.003 -> 0.0003 (cosine")
    assert f"| {load_card('oasst2-33k-ja').license} |" in next(line for line in card.splitlines() if "card `oasst2-33k-ja`" in line)
    assert "adapter only" in table_value(card, "export") and "`tune merge`" in table_value(card, "export")
    assert "AutoPeftModelForCausalLM.from_pretrained" in card and "in the run folder (this folder's parent)" in card


@pytest.mark.slow
def test_full_runs_final_folder_gets_the_card_of_a_full_model(full_run):
    card = (full_run / "final" / "README.md").read_text()
    assert "library_name: transformers" in front_matter(card)
    assert table_value(card, "export") == "the fully fine-tuned weights, saved in float32"
    assert "AutoModelForCausalLM.from_pretrained" in card and "AutoPeftModel" not in card


def test_card_for_an_adapter_of_a_real_preset_names_its_hub_base_for_peft(write_recipe):
    path = write_recipe("""\
        model: {name: llm-jp-4-8b, variant: thinking}
        method: {name: sft, peft: qlora}
        data:
          datasets:
            - {card: oasst2-33k-ja}
        """)
    recipe = load_recipe(path).recipe
    card = render_card(recipe, {"steps": 10}, title="my-adapter", form="adapter")
    front = front_matter(card)
    assert "library_name: peft" in front and "base_model: llm-jp/llm-jp-4-8b-thinking" in front
    assert "- qlora" in front and "- llm-jp/oasst2-33k-ja" in front
    assert "trained on the base loaded in 4 bits" in table_value(card, "export")
    assert 'eos_token_id=tokenizer.convert_tokens_to_ids(["<|return|>", "<|call|>"])' in card
    with pytest.raises(ValueError, match="does not fit a run with method.peft qlora"):
        render_card(recipe, {}, title="x", form="full")
    with pytest.raises(ValueError, match="expected one of adapter, merged, full"):
        render_card(recipe, {}, title="x", form="lora")


CURVE_LINE = "![training curve](training_curve.svg)"
CURVE_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><title>placed by the test</title></svg>\n'


def test_card_shows_the_training_curve_only_when_the_picture_is_next_to_it(write_recipe, tmp_path):
    recipe = load_recipe(write_recipe("""\
        model: {name: tiny-llm-jp-4-8b}
        method: {name: sft, peft: lora}
        data:
          datasets:
            - {path: "tune:samples/demo-chat.jsonl"}
        """)).recipe
    folder = tmp_path / "final"
    folder.mkdir()
    assert CURVE_LINE not in write_card(folder, recipe, {}, title="t", form="adapter").read_text()
    (folder / "training_curve.svg").write_text(CURVE_SVG)
    card = write_card(folder, recipe, {}, title="t", form="adapter").read_text()
    assert card.count(CURVE_LINE) == 1
    assert card.index("## Results") < card.index(CURVE_LINE) < card.index("## How it was made")


@pytest.mark.slow
def test_merge_carries_the_runs_training_curve_into_the_export_and_its_card(lora_runs, tmp_path):
    from tune.export.merge import merge_run

    run = tmp_path / "run"
    shutil.copytree(lora_runs["tiny-llm-jp-4-8b"], run)
    (run / "final" / "training_curve.svg").unlink(missing_ok=True)
    bare = merge_run(run, tmp_path / "without-curve", printer=lambda *_: None).out
    assert not (bare / "training_curve.svg").exists() and CURVE_LINE not in (bare / "README.md").read_text()

    (run / "final" / "training_curve.svg").write_text(CURVE_SVG)
    out = merge_run(run, tmp_path / "with-curve", printer=lambda *_: None).out
    assert (out / "training_curve.svg").read_text() == CURVE_SVG
    card = (out / "README.md").read_text()
    assert card.count(CURVE_LINE) == 1 and "the resolved recipe is `recipe.yaml` in this folder" in card
