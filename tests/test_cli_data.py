"""`tune data ls | show | preview`: what a user reads to audit the data before training."""

import json

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
