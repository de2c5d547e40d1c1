"""A corpus's `.idx`, read by tune without torch, says what Megatron-Core's own reader says; the blend
weights and the planned run length follow from its token counts; bad corpus files are refused by key."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.data.corpus_helpers import cpt_recipe, load, write_corpus
from tune.data.corpus_blend import blend_weights, corpus_names, planned_samples, planned_steps
from tune.data.corpus_index import read_index
from tune.errors import UserError

KEY = "data.corpora.0.prefix"


def test_counts_equal_megatrons_reader(tmp_path):
    documents = write_corpus(tmp_path / "c", 37, seed=1)  # imports Megatron-Core quietly first
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    index = read_index(tmp_path / "c", KEY)
    theirs = IndexedDataset(str(tmp_path / "c"))
    assert index.documents == len(theirs.document_indices) - 1 == 37
    assert index.sequences == len(theirs) == 37
    assert index.tokens == int(theirs.sequence_lengths.sum()) == sum(len(d) for d in documents)
    assert index.dtype == np.int32 == theirs.index.dtype
    assert np.array_equal(index.sequence_lengths(), theirs.sequence_lengths)
    assert index.tokens_in(3, 10) == sum(len(d) for d in documents[3:10])


def test_uint16_corpus_cannot_hold_a_large_vocabulary(tmp_path):
    write_corpus(tmp_path / "small", 4, seed=2, dtype=np.uint16)
    index = read_index(tmp_path / "small", KEY)
    assert index.dtype == np.uint16
    index.check_vocab(65_536, KEY)  # uint16 holds ids up to 65,535
    with pytest.raises(UserError, match=r"data\.corpora\.0\.prefix: .*small\.idx stores token ids as uint16.*196,608"):
        index.check_vocab(196_608, KEY)


def test_missing_foreign_and_cut_files_are_refused_by_key(tmp_path):
    with pytest.raises(UserError, match=rf"{KEY}: no such corpus file: {tmp_path}/nothing\.idx"):
        read_index(tmp_path / "nothing", KEY)
    write_corpus(tmp_path / "c", 10, seed=3)
    (tmp_path / "c.bin").rename(tmp_path / "c.bin.away")
    with pytest.raises(UserError, match=rf"{KEY}: no such corpus file: {tmp_path}/c\.bin"):
        read_index(tmp_path / "c", KEY)
    (tmp_path / "c.bin.away").rename(tmp_path / "c.bin")

    (tmp_path / "foreign.idx").write_bytes(b"PK\x03\x04 this is a zip file, not an index" * 3)
    (tmp_path / "foreign.bin").write_bytes(b"")
    with pytest.raises(UserError, match=rf"{KEY}: {tmp_path}/foreign\.idx is not a Megatron index"):
        read_index(tmp_path / "foreign", KEY)

    data = (tmp_path / "c.idx").read_bytes()
    (tmp_path / "cut.idx").write_bytes(data[:-20])
    (tmp_path / "cut.bin").write_bytes((tmp_path / "c.bin").read_bytes())
    with pytest.raises(UserError, match=rf"{KEY}: {tmp_path}/cut\.idx is cut short"):
        read_index(tmp_path / "cut", KEY)

    (tmp_path / "short.idx").write_bytes(data)
    (tmp_path / "short.bin").write_bytes((tmp_path / "c.bin").read_bytes()[:-8])
    with pytest.raises(UserError, match=rf"{KEY}: {tmp_path}/short\.bin holds .* bytes and its index"):
        read_index(tmp_path / "short", KEY)


def test_weights_are_tokens_times_repeat_normalized_and_steps_follow_epochs(tmp_path):
    recipe = load(cpt_recipe(tmp_path, "[{prefix: code, repeat: 8}, {prefix: ja, repeat: 4}, {prefix: en}]",
                             seq_len=100, max_steps=None, batch=2, extra="launch: {nodes: 1}\n"))
    tokens = [1_000, 3_000, 20_000]
    raw = [8_000, 12_000, 20_000]
    assert blend_weights(recipe, tokens) == pytest.approx([r / 40_000 for r in raw])
    # 2 epochs (the schema's default) x 40,000 blended tokens / 100 tokens per window / global batch 2
    assert planned_steps(recipe, tokens) == 400
    assert planned_samples(recipe, tokens) == 800
    steps = load(cpt_recipe(tmp_path, "[{prefix: a}]", max_steps=7, batch=3))
    assert planned_steps(steps, [10]) == 7 and planned_samples(steps, [10]) == 21
    tiny = load(cpt_recipe(tmp_path, "[{prefix: a}]", seq_len=4096, max_steps=None))
    assert planned_steps(tiny, [10]) == 1  # at least one step


def test_shares_are_the_weights_and_need_max_steps(tmp_path):
    shares = load(cpt_recipe(tmp_path, "[{prefix: a, share: 0.25}, {prefix: b, share: 0.75}]"))
    assert blend_weights(shares, [10, 1_000_000]) == pytest.approx([0.25, 0.75])
    by_epochs = load(cpt_recipe(tmp_path, "[{prefix: a, share: 0.25}, {prefix: b, share: 0.75}]", max_steps=None))
    with pytest.raises(UserError, match="set train.max_steps"):
        planned_steps(by_epochs, [10, 20])


def test_default_names_grow_until_unique(tmp_path):
    recipe = load(cpt_recipe(tmp_path, "[{prefix: /d/ja/cc/part_0}, {prefix: /d/en/cc/part_0}, "
                                       "{prefix: /d/code/stack}, {prefix: /d/x/part_0, name: mine}]"))
    assert corpus_names(recipe.data.corpora) == ["ja/cc/part_0", "en/cc/part_0", "stack", "mine"]


def test_the_header_reader_imports_no_torch():
    code = ("import sys, tune.data.corpus_index, tune.data.corpus_blend, tune.recipe.corpus_checks, tune.data.corpus_summary; "
            "sys.exit('torch' in sys.modules or 'megatron' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
