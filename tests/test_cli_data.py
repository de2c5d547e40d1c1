"""`tune data ls | show | preview`: what a user reads to audit the data before training."""

import json
from pathlib import Path

import pytest

from tune.cli import main
from tune.data.cards import card_names


def test_data_ls_has_one_row_per_card_with_kind_and_licence(capsys):
    assert main(["data", "ls"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["card", "languages", "kind", "rows", "licence"]
    assert [line.split()[0] for line in lines[1:]] == card_names()
    dolly = next(line for line in lines if line.startswith("databricks-dolly-15k-ja "))
    assert dolly.split()[1:] == ["ja", "sft", "~15,000", "cc-by-sa-3.0"]


def test_data_show_marks_the_supervised_answer_only(capsys):
    assert main(["data", "show", "oasst2-33k-ja"]) == 0
    out = capsys.readouterr().out
    assert "hf_id: llm-jp/oasst2-33k-ja" in out
    rendered = out.split("supervised tokens marked):\n", 1)[1]
    marked = rendered[rendered.index("⟦"):]
    assert marked.startswith("⟦<|channel|>final<|message|>") and marked.rstrip().endswith("<|return|>⟧")
    assert "<|start|>user" not in marked.split("⟧")[0]


def test_data_show_unknown_card_suggests_a_name(capsys):
    assert main(["data", "show", "oasst2-33k"]) == 2
    assert "did you mean 'oasst2-33k-ja'" in capsys.readouterr().err


def test_data_preview_json_gives_samples_with_spans_then_stats(capsys):
    assert main(["data", "preview", "tiny/sft-lora", "-n", "4", "--json"]) == 0
    objects = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    samples, stats = objects[:-1], objects[-1]
    assert len(samples) == 4
    for sample in samples:
        assert set(sample) == {"dataset", "input_ids", "labels", "supervised_spans"}
        assert len(sample["input_ids"]) == len(sample["labels"])
        assert sample["supervised_spans"] and all(
            span.endswith(("<|end|>", "<|return|>", "<|call|>")) for span in sample["supervised_spans"])
    per_dataset = stats["stats"]["datasets"]
    assert len(per_dataset) == 8 and sum(d["samples"] for d in per_dataset) > 40
    assert {"rows_read", "tokens", "supervised_tokens", "dropped_overlong", "truncated"} <= set(per_dataset[0])


REPO = Path(__file__).resolve().parent.parent
TINY_RECIPES = sorted(f"tiny/{path.stem}" for path in (REPO / "recipes" / "tiny").glob("*.yaml"))
REAL_RECIPES = sorted(f"{path.parent.name}/{path.stem}" for path in (REPO / "recipes").glob("*/*.yaml")
                      if path.parent.name != "tiny")
REAL_TWIN = {"llm-jp-4-8b": "tiny-llm-jp-4-8b", "llm-jp-4-32b-a3b": "tiny-llm-jp-4-32b-a3b"}


def method_of(recipe: str) -> str:
    from tune.recipe import load_recipe

    return load_recipe(recipe).recipe.method.name


def test_the_shipped_recipe_lists_are_what_the_tests_below_cover():
    assert len(TINY_RECIPES) >= 9 and {"tiny/sft-lora", "tiny/dpo-lora", "tiny/moe-dpo"} <= set(TINY_RECIPES)
    assert {name.split("/")[0] for name in REAL_RECIPES} == set(REAL_TWIN)


def test_data_preview_takes_overrides_after_its_options(capsys):
    # The override after -n / --json is applied exactly as the same override before them.
    assert main(["data", "preview", "tiny/sft-lora", "-n", "3", "--json", "data.max_seq_len=128", "data.overlong=truncate"]) == 0
    after = capsys.readouterr().out
    assert main(["data", "preview", "tiny/sft-lora", "data.max_seq_len=128", "-n", "3", "data.overlong=truncate", "--json"]) == 0
    assert capsys.readouterr().out == after
    objects = [json.loads(line) for line in after.splitlines()]
    assert len(objects) == 4 and all(len(sample["input_ids"]) <= 128 for sample in objects[:-1])
    assert sum(d["truncated"] for d in objects[-1]["stats"]["datasets"]) > 0
    # The issue's own line, and a bad override after an option refused as one before it would be.
    assert main(["data", "preview", "tiny/sft-lora", "-n", "1", "data.on_bad_row=error"]) == 0
    assert main(["data", "preview", "tiny/sft-lora", "-n", "1", "data.on_bad_rows=error"]) == 2
    assert "data.on_bad_rows: unknown key" in capsys.readouterr().err
    assert main(["data", "preview", "tiny/sft-lora", "-n", "-1"]) == 2
    assert capsys.readouterr().err == "error: -n -1: must be 0 or more (the samples to show)\n"


@pytest.mark.parametrize("recipe", [r for r in TINY_RECIPES if method_of(r) != "cpt"])  # cpt: tests/data/test_corpus_recipe.py
def test_data_preview_shows_every_tiny_recipe_with_the_loss_marked(recipe, capsys):
    assert main(["data", "preview", recipe, "-n", "2"]) == 0
    out = capsys.readouterr().out
    body, report = out.split("\n---\n")
    assert report.splitlines()[-2].startswith("total: ")
    if method_of(recipe) == "sft":
        assert body.startswith("--- sample 1 of ") and "\n--- sample 2 of " in body
        assert body.count("⟦") == body.count("⟧") > 0
        return
    pairs = body.split("--- pair ")[1:]
    assert len(pairs) == 2 and pairs[0].startswith("1 of ") and pairs[1].startswith("2 of ")
    for pair in pairs:
        _, rest = pair.split("\nprompt:\n", 1)
        prompt, rest = rest.split("\nchosen:\n", 1)
        chosen, rejected = rest.split("\nrejected:\n", 1)
        assert prompt.startswith("<|start|>") and prompt.endswith("<|start|>assistant") and "⟦" not in prompt
        for answer in (chosen, rejected.rstrip("\n")):  # every answer token carries the loss: one marked run
            assert answer.startswith("⟦<|channel|>") and answer.endswith(("<|return|>⟧", "<|end|>⟧", "<|call|>⟧"))
            assert answer.count("⟦") == answer.count("⟧") == 1
        assert chosen != rejected.rstrip("\n")


def test_data_preview_json_of_a_dpo_recipe_gives_pairs_then_stats(capsys):
    from tune.models.presets import get_preset
    from tune.models.tiny_twins import ensure_twin
    from tune.models.tokenizer_sentencepiece import build_fast_tokenizer_from_assets

    assert main(["data", "preview", "tiny/dpo-lora", "-n", "3", "--json"]) == 0
    objects = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    pairs, stats = objects[:-1], objects[-1]
    assert len(pairs) == 3 and set(stats) == {"stats", "cache_key"}
    per_dataset = stats["stats"]["datasets"]
    assert len(per_dataset) == 3 and all(d["samples"] > 0 and d["supervised_tokens"] > 0 for d in per_dataset)
    tokenizer = build_fast_tokenizer_from_assets(ensure_twin(get_preset("tiny-llm-jp-4-8b")))
    for pair in pairs:
        assert set(pair) == {"dataset", "prompt_ids", "chosen_ids", "rejected_ids", "prompt", "chosen", "rejected"}
        assert pair["dataset"].startswith("card ")
        assert pair["prompt"] == tokenizer.decode(pair["prompt_ids"], skip_special_tokens=False)
        for side in ("chosen", "rejected"):
            # The answer's text is what the model reads after the prompt, spaces included.
            assert pair["prompt"] + pair[side] == tokenizer.decode(pair["prompt_ids"] + pair[f"{side}_ids"], skip_special_tokens=False)
            assert pair[side].startswith("<|channel|>") and pair[side].endswith("<|return|>")
        assert pair["chosen_ids"] != pair["rejected_ids"]
    # The text view shows the same pair, its answers marked.
    assert main(["data", "preview", "tiny/dpo-lora", "-n", "1"]) == 0
    out = capsys.readouterr().out
    first = pairs[0]
    assert f"prompt:\n{first['prompt']}\nchosen:\n⟦{first['chosen']}⟧\nrejected:\n⟦{first['rejected']}⟧\n" in out


@pytest.mark.parametrize("recipe", REAL_RECIPES)
def test_data_preview_of_a_real_model_recipe_offline_is_one_clear_line(recipe, capsys):
    # As shipped, the checkpoint is the first thing out of reach.
    assert main(["data", "preview", recipe]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("error: model llm-jp/") and "Hugging Face Hub cannot be reached" in captured.err
    # With a local tokenizer (the tiny twin's folder), the hub datasets are, for SFT and DPO alike.
    from tune.models.presets import get_preset
    from tune.models.tiny_twins import ensure_twin

    twin = ensure_twin(get_preset(REAL_TWIN[recipe.split("/")[0]]))
    assert main(["data", "preview", recipe, "-n", "1", f"model.path={twin}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    if method_of(recipe) == "cpt":  # the corpora lie on the cluster: data.corpus_root says where
        assert captured.err.startswith("error: data.corpora.0.prefix: no such corpus file: ")
        assert "set data.corpus_root" in captured.err
        return
    assert captured.err.startswith("error: card ") and "Hugging Face Hub cannot be reached" in captured.err
    assert "set `path:` on this dataset" in captured.err
