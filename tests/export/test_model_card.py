"""The model card of an export: base, method, datasets with their licences, hyper-parameters and
the run's measured figures, all taken from the recipe, the manifest and the dataset cards."""

from __future__ import annotations

import json
import re

import pytest

from tune.recipe import load_recipe
from tune.data.cards import load_card
from tune.export.model_card import render_card
from tune.export.run_folder import read_run


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
    card = render_card(recipe, manifest, title="my-model", export_dtype="bfloat16", merged=True)
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
