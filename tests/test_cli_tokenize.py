"""`tune data tokenize`: what the user sees on the command line (summary, errors with file:line, exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tune.cli import main


def write(path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main(["data", "tokenize", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_tokenize_writes_the_pair_and_says_what_it_holds(tmp_path, capsys):
    corpus = write(tmp_path / "c.jsonl", ['{"body": "こんにちは"}', '{"body": "hello"}'])
    status, out, err = run(capsys, corpus, "--out", tmp_path / "c", "--model", "tiny-llm-jp-4-8b", "--text-field", "body")
    assert status == 0, err
    assert "2 documents" in out and "uint16; BOS 1, EOD 2, tokenizer tiny-llm-jp-4-8b" in out
    assert "tokenize: 2 docs" in err and "ETA" in err  # the progress line goes to stderr
    manifest = json.loads((tmp_path / "c.manifest.json").read_text())
    assert manifest["sources"][0]["path"] == corpus and manifest["text_field"] == "body"


def test_shards_then_merge_on_the_command_line(tmp_path, capsys):
    inputs = [write(tmp_path / f"{k}.txt", [f"document {k}"]) for k in range(3)]
    for index in range(2):
        status, out, err = run(capsys, *inputs, "--out", tmp_path / "s", "--model", "tiny-llm-jp-4-8b", "--shard", f"{index}/2")
        assert status == 0, err
    assert "s.shard-1-of-2.bin" in out
    status, out, err = run(capsys, "--merge-shards", 2, "--out", tmp_path / "s")
    assert status == 0, err
    assert "merged 2 shards" in err
    assert json.loads((tmp_path / "s.manifest.json").read_text())["documents"] == 3


@pytest.mark.parametrize(("lines", "message"), [
    (['{"text": "ok"}', '{"content": "x", "id": 7}'],
     "c.jsonl:2: no field 'text' (the line has: 'content', 'id'); name the text field with --text-field"),
    (['{"text": "ok"}', '', '{"text": "unterminated}'], "c.jsonl:3: not a JSON line"),
    (['["a", "list"]'], "c.jsonl:1: expected a JSON object with a 'text' field, got a list"),
    (['{"text": 3}'], "c.jsonl:1: field 'text' is a int, not a string"),
])
def test_a_bad_line_is_named_by_file_and_line(tmp_path, capsys, lines, message):
    corpus = write(tmp_path / "c.jsonl", lines)
    status, out, err = run(capsys, corpus, "--out", tmp_path / "out", "--model", "tiny-llm-jp-4-8b")
    assert status == 2
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out.manifest.json").exists()


@pytest.mark.parametrize(("args", "message"), [
    ([], "no input files"),
    (["missing.jsonl"], "input missing.jsonl: no such file"),
    (["c.csv"], "c.csv: cannot tell what kind of corpus file this is"),
    (["c.jsonl", "--out-dir"], None),  # argparse: exit 2 with usage
    (["c.jsonl", "--recipe", "r.yaml"], "exactly one of --model NAME or --recipe FILE"),
    (["c.jsonl", "--shard", "2/2"], "--shard 2/2: expected i/n with 0 <= i < n"),
    (["c.jsonl", "--shard", "x"], "--shard 'x': expected i/n"),
    (["c.jsonl", "--workers", "0"], "--workers 0: must be at least 1"),
])
def test_wrong_arguments_are_refused_with_exit_2(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "c.jsonl", ['{"text": "ok"}'])
    (tmp_path / "c.csv").write_text("a,b\n")
    status, out, err = run(capsys, *args, "--out", "out", "--model", "tiny-llm-jp-4-8b")
    assert status == 2
    if message:
        assert message in err


def test_out_folder_missing_and_merge_of_unfinished_shards_are_refused(tmp_path, capsys):
    corpus = write(tmp_path / "c.jsonl", ['{"text": "ok"}'])
    status, _, err = run(capsys, corpus, "--out", tmp_path / "nope" / "out", "--model", "tiny-llm-jp-4-8b")
    assert status == 2 and f"the folder {tmp_path / 'nope'} does not exist" in err
    status, _, err = run(capsys, corpus, "--out", tmp_path / "s", "--model", "tiny-llm-jp-4-8b", "--shard", "0/1")
    assert status == 0
    (tmp_path / "s.shard-0-of-1.bin").write_bytes(b"")  # a half-written shard
    status, _, err = run(capsys, "--merge-shards", 1, "--out", tmp_path / "s")
    assert status == 2 and "shard 0 of 1:" in err and "is missing or incomplete" in err


def test_recipe_names_the_tokenizer_its_model_trains_with(tmp_path, capsys):
    """`--recipe` takes the recipe's model: the shipped tiny cpt recipe's tokenizer is the one the
    bundled corpora were tokenized with (same fingerprint in the manifests)."""
    from tune.data.corpus_manifest import read_json

    corpus = write(tmp_path / "c.jsonl", ['{"text": "ok"}'])
    status, out, err = run(capsys, corpus, "--out", tmp_path / "c", "--recipe", "tiny/cpt")
    assert status == 0, err
    ours = read_json(tmp_path / "c.manifest.json")["tokenizer"]
    bundled = read_json(Path(__file__).resolve().parents[1] / "tune/samples/corpora/tiny-ja.manifest.json")["tokenizer"]
    assert ours == bundled
