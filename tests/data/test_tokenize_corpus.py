"""`tune data tokenize`'s engine (tune.data.tokenize_corpus): what a user finds in PREFIX.bin/.idx.

Every document reads back through Megatron-Core's own IndexedDataset as [bos] + ids + [eod], in
input order, for every input kind; with LLM-jp-4's real tokenizer the ids are exactly what
Megatron-LM's Llama2Tokenizer path (SentencePiece) writes; a run killed midway resumes without
duplicating documents; 2 workers, or shards + merge, give the same bytes as 1 worker; the bundled
tiny corpora are what scripts/make_tiny_corpora.py writes.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tune.data.cache import tokenizer_fingerprint
from tune.data.corpus_manifest import VOLATILE_KEYS
from tune.data.tokenize_corpus import TokenizeOptions, merge_shards, tokenize_corpus
from tune.errors import UserError

REPO = Path(__file__).resolve().parents[2]
TEXTS = [
    "吾輩は猫である。名前はまだ無い。",
    "A plain English document.\nWith a second line.",
    "a literal <|eod|> and <|startoftext|> inside a document stay text",
    "",
    "def f(x):\n    return x + 1\n",
]


def read_documents(prefix) -> list[list[int]]:
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    dataset = IndexedDataset(str(prefix))
    assert len(dataset.document_indices) == len(dataset) + 1  # one sequence per document, as preprocess_data.py writes
    return [dataset[i].tolist() for i in range(len(dataset))]


def expected(tokenizer, text: str) -> list[int]:
    ids = tokenizer(text, add_special_tokens=False, split_special_tokens=True).input_ids
    return [tokenizer.bos_token_id, *ids, tokenizer.eos_token_id]


def write_jsonl(path: Path, texts, field: str = "text") -> Path:
    path.write_text("".join(json.dumps({"id": i, field: t}, ensure_ascii=False) + "\n" for i, t in enumerate(texts)),
                    encoding="utf-8")
    return path


def test_every_input_kind_round_trips_through_megatrons_reader(tmp_path, tiny_tokenizer):
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = write_jsonl(tmp_path / "a.jsonl", TEXTS[:3])
    gz = tmp_path / "b.jsonl.gz"
    gz.write_bytes(gzip.compress(write_jsonl(tmp_path / "tmp.jsonl", TEXTS[3:], field="body").read_bytes()))
    parquet = tmp_path / "c.parquet"
    pq.write_table(pa.table({"body": ["parquet one", "parquet two"]}), parquet)
    txt = tmp_path / "d.txt"
    txt.write_text("line one\n\nline two\n", encoding="utf-8")

    with pytest.raises(UserError, match="no field 'text'"):
        tokenize_corpus([jsonl, gz], tmp_path / "bad", tiny_tokenizer, "tiny")
    manifest = tokenize_corpus([gz, parquet], tmp_path / "body", tiny_tokenizer, "tiny",
                               TokenizeOptions(text_field="body"))
    assert read_documents(tmp_path / "body") == [expected(tiny_tokenizer, t) for t in [*TEXTS[3:], "parquet one", "parquet two"]]
    assert read_documents(tmp_path / "body")[0] == [1, 2]  # an empty document is BOS + EOD, as Megatron writes it

    manifest = tokenize_corpus([jsonl, txt], tmp_path / "out", tiny_tokenizer, "tiny",
                               TokenizeOptions(txt_documents="line"))
    documents = read_documents(tmp_path / "out")
    assert documents == [expected(tiny_tokenizer, t) for t in [*TEXTS[:3], "line one", "line two"]]
    eod_token = tiny_tokenizer.convert_tokens_to_ids("<|eod|>")
    assert eod_token not in documents[2] and documents[2].count(2) == 1  # the literal "<|eod|>" stayed text
    assert manifest["documents"] == 5 and manifest["tokens"] == sum(map(len, documents))
    assert [s["documents"] for s in manifest["sources"]] == [3, 2]
    assert manifest["dtype"] == "uint16" and os.path.getsize(tmp_path / "out.bin") == 2 * manifest["tokens"]
    assert manifest["tokenizer"]["fingerprint"] == tokenizer_fingerprint(tiny_tokenizer)
    assert not (tmp_path / "out.parts").exists()


@pytest.fixture(scope="module")
def llmjp4():
    """LLM-jp-4's fast tokenizer as tune builds it, and SentencePiece on the same (vendored) model."""
    import sentencepiece

    from tune.models.tokenizer_sentencepiece import build_fast_tokenizer_from_assets

    folder = REPO / "tests" / "assets" / "llmjp4-tokenizer"
    (model,) = folder.glob("*.model")
    return build_fast_tokenizer_from_assets(folder), sentencepiece.SentencePieceProcessor(model_file=str(model))


def test_llmjp4_documents_are_what_megatrons_llama2_tokenizer_writes(tmp_path, llmjp4):
    """Megatron-LM's _Llama2Tokenizer.tokenize is [sp.bos_id()] + sp.encode(text); --append-eod adds
    sp.eos_id(): 1 and 2 for LLM-jp-4; int32 for its 196,608 ids (DType.optimal_dtype)."""
    llmjp4_tokenizer, llmjp4_sp = llmjp4
    texts = [*TEXTS, "東京都の人口は約1400万人です。 Tokyo has about 14 million people.", "  leading spaces\tand tabs"]
    manifest = tokenize_corpus([write_jsonl(tmp_path / "a.jsonl", texts)], tmp_path / "out", llmjp4_tokenizer, "llm-jp-4")
    assert (llmjp4_sp.bos_id(), llmjp4_sp.eos_id()) == (1, 2)
    assert read_documents(tmp_path / "out") == [[1, *llmjp4_sp.encode(t), 2] for t in texts]
    assert manifest["dtype"] == "int32" and manifest["tokenizer"]["vocab_size"] == llmjp4_sp.vocab_size()


def test_sentencepiece_user_symbol_names_stay_text_unlike_sentencepiece(tmp_path, llmjp4):
    """The one deliberate difference (tune.data.tokenize_corpus): SentencePiece matches its user-defined
    symbol names in text (``<pad>`` -> 4), tune's tokenizer reads them as text, as the published
    tokenizer.json does. Pinned so that a change of either side is seen."""
    tokenizer, sp = llmjp4
    text = "a <pad> b"
    tokenize_corpus([write_jsonl(tmp_path / "a.jsonl", [text])], tmp_path / "out", tokenizer, "llm-jp-4")
    (document,) = read_documents(tmp_path / "out")
    assert 4 in sp.encode(text) and 4 not in document
    assert tokenizer.decode(document[1:-1]) == text


def corpus_files(tmp_path: Path, sizes) -> list[Path]:
    files = []
    for k, size in enumerate(sizes):
        texts = [f"document {k}-{i}: " + "the cat sat on the mat. 猫がいる。" * (1 + i % 7) for i in range(size)]
        files.append(write_jsonl(tmp_path / f"in{k}.jsonl", texts))
    return files


@pytest.mark.multiprocess
def test_two_workers_write_the_same_bytes_as_one(tmp_path, tiny_tokenizer, monkeypatch):
    """Run under `flock /tmp/tune-mp.lock` (it starts 2 worker processes)."""
    monkeypatch.setattr("tune.data.tokenize_corpus.BATCH_DOCUMENTS", 16)  # many batches in flight
    inputs = corpus_files(tmp_path, [300, 7, 250])
    one = tokenize_corpus(inputs, tmp_path / "one", tiny_tokenizer, "tiny", TokenizeOptions(workers=1))
    two = tokenize_corpus(inputs, tmp_path / "two", tiny_tokenizer, "tiny", TokenizeOptions(workers=2))
    for suffix in (".bin", ".idx"):
        assert (tmp_path / f"one{suffix}").read_bytes() == (tmp_path / f"two{suffix}").read_bytes()
    assert one["sources"] == two["sources"] and one["documents"] == 557


def test_shards_merged_equal_the_unsharded_output(tmp_path, tiny_tokenizer):
    inputs = corpus_files(tmp_path, [5, 6, 7, 8, 9])
    whole = tokenize_corpus(inputs, tmp_path / "whole", tiny_tokenizer, "tiny")
    for index in range(2):
        tokenize_corpus(inputs, tmp_path / "split", tiny_tokenizer, "tiny", shard=(index, 2))
    assert json.loads((tmp_path / "split.shard-0-of-2.manifest.json").read_text())["documents"] == 5 + 6 + 7  # inputs 0-2
    merged = merge_shards(tmp_path / "split", 2)
    for suffix in (".bin", ".idx"):  # shard order is input order: the very same bytes
        assert (tmp_path / f"whole{suffix}").read_bytes() == (tmp_path / f"split{suffix}").read_bytes()
    assert merged["sources"] == whole["sources"] and merged["documents"] == whole["documents"] == 35

    (tmp_path / "split.shard-1-of-2.manifest.json").unlink()  # shard 1 never finished
    with pytest.raises(UserError, match=r"shard 1 of 2: .*split.shard-1-of-2 is missing or incomplete"):
        merge_shards(tmp_path / "split", 2)
    with pytest.raises(UserError, match="3 shards but only 2 input files"):
        tokenize_corpus(inputs[:2], tmp_path / "x", tiny_tokenizer, "tiny", shard=(0, 3))


def test_a_run_killed_midway_resumes_without_duplicates(tmp_path, tiny_tokenizer, monkeypatch):
    inputs = corpus_files(tmp_path, [50, 4000, 4000])
    reference = tokenize_corpus(inputs, tmp_path / "ref", tiny_tokenizer, "tiny")
    command = [sys.executable, "-m", "tune", "data", "tokenize", *map(str, inputs), "--out", str(tmp_path / "out"),
               "--model", "tiny-llm-jp-4-8b"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first_done = tmp_path / "out.parts" / "00000.done.json"
    deadline = time.monotonic() + 120
    while not first_done.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first_done.exists(), process.stderr.read().decode()
    assert not (tmp_path / "out.parts" / "00002.done.json").exists()  # killed with inputs left to do
    assert not (tmp_path / "out.manifest.json").exists()  # nothing that looks complete

    import tune.data.tokenize_corpus as engine

    written, write_part = [], engine._write_part
    monkeypatch.setattr(engine, "_write_part", lambda path, part, *rest: written.append(part.name) or write_part(path, part, *rest))
    lines = []
    manifest = tokenize_corpus(inputs, tmp_path / "out", tiny_tokenizer, "tiny-llm-jp-4-8b",
                               stream=_Lines(lines))
    assert written == ["00001", "00002"]  # the finished input was skipped, the interrupted one redone
    assert read_documents(tmp_path / "out") == read_documents(tmp_path / "ref")  # none lost, none twice
    assert (tmp_path / "out.bin").read_bytes() == (tmp_path / "ref.bin").read_bytes()
    assert manifest["documents"] == reference["documents"] == 8050
    assert manifest["tokens"] == reference["tokens"] and "100%" in lines[-1]

    again = []
    tokenize_corpus(inputs, tmp_path / "out", tiny_tokenizer, "tiny-llm-jp-4-8b", stream=_Lines(again))
    assert "already complete" in again[0]


class _Lines:
    """A text stream collecting what is printed to it, line by line."""

    def __init__(self, lines: list) -> None:
        self.lines = lines

    def write(self, text: str) -> None:
        if text.strip():
            self.lines.append(text)

    def flush(self) -> None:
        pass


def test_the_bundled_tiny_corpora_are_what_the_script_writes(tmp_path, tiny_tokenizer):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import make_tiny_corpora
    finally:
        sys.path.remove(str(REPO / "scripts"))
    bundled = REPO / "tune" / "samples" / "corpora"
    assert make_tiny_corpora.main(["--out", str(tmp_path)]) == 0
    for name in make_tiny_corpora.DOCUMENTS:
        for relative in (f"src/{name}.jsonl", f"{name}.bin", f"{name}.idx"):
            assert (tmp_path / relative).read_bytes() == (bundled / relative).read_bytes(), relative
        ours, theirs = (json.loads((folder / f"{name}.manifest.json").read_text()) for folder in (tmp_path, bundled))
        assert {k: v for k, v in ours.items() if k not in VOLATILE_KEYS} == \
            {k: v for k, v in theirs.items() if k not in VOLATILE_KEYS}
        assert theirs["tokenizer"]["fingerprint"] == tokenizer_fingerprint(tiny_tokenizer)
        assert theirs["documents"] >= 400 and theirs["tokens"] >= 40 * 8 * 257 // 3 * 2  # 2x a 40-step 3-way share
    size = sum(p.stat().st_size for p in bundled.rglob("*") if p.is_file())
    assert size < 1_500_000, size
