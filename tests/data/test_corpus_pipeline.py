"""`prepare_corpora` builds windows exactly as Megatron-Core builds them, holds documents out per corpus,
refuses corpora it cannot train on, and rebuilds a damaged cache entry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.data.corpus_helpers import StandInTokenizer, cpt_recipe, load, write_corpus
from tune.data.corpus_pipeline import prepare_corpora
from tune.errors import UserError

SEQ = 16


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNE_CACHE", str(tmp_path / "cache"))


def window(stream: np.ndarray, position: int) -> np.ndarray:
    """Sample ``position`` of a GPT document stream: L + 1 tokens, sharing one with the next sample."""
    return stream[position * SEQ: position * SEQ + SEQ + 1]


def test_one_epoch_of_windows_is_the_shuffled_document_stream(tmp_path):
    documents = write_corpus(tmp_path / "c", 60, seed=4)
    tokens = sum(len(d) for d in documents)
    epoch = (tokens - 1) // SEQ  # Megatron's samples in one epoch (drop_last_partial_sequence)
    recipe = load(cpt_recipe(tmp_path, "[{prefix: c}]", seq_len=SEQ, max_steps=epoch, batch=1))
    data = prepare_corpora(recipe, StandInTokenizer())
    assert len(data.train) == epoch and data.eval == {}

    gpt = data.train.source.datasets[0]  # Megatron's GPTDataset under the blend
    order = np.asarray(gpt.document_index[:len(documents)])  # the first epoch's shuffled documents
    assert sorted(order) == list(range(len(documents)))
    stream = np.concatenate([documents[d] for d in order])
    positions = [int(gpt.shuffle_index[i]) for i in range(epoch)]
    assert sorted(positions) == list(range(epoch))  # every window of the epoch once: none repeated
    windows = {}
    for i, position in enumerate(positions):
        ids = data.train[i]["input_ids"]
        assert ids.dtype == torch.long and ids.shape == (SEQ + 1,)
        assert np.array_equal(ids.numpy(), window(stream, position)), f"sample {i}"
        windows[position] = ids.numpy()
    rebuilt = np.concatenate([windows[p][:-1] for p in range(epoch)] + [windows[epoch - 1][-1:]])
    assert np.array_equal(rebuilt, stream[:epoch * SEQ + 1])  # every document's tokens, in stream order
    assert len(stream) - len(rebuilt) < SEQ  # only the last partial window is left out


def test_the_blend_is_megatrons_builder_sample_for_sample(tmp_path):
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    for name, count, seed in (("code", 30, 5), ("ja", 80, 6), ("en", 150, 7)):
        write_corpus(tmp_path / name, count, seed=seed)
    recipe = load(cpt_recipe(tmp_path, "[{prefix: code, repeat: 8}, {prefix: ja, repeat: 4}, {prefix: en}]",
                             seq_len=SEQ, max_steps=100, batch=4), ["train.seed=1234"])
    data = prepare_corpora(recipe, StandInTokenizer())
    weights = [c.target for c in data.report.corpora]
    # LLM-jp's way: Megatron's own builder given `weight prefix` pairs (a process without a group, indices
    # cached beside the corpora, the blend's in memory)
    from tune.data.corpus_megatron import MegatronTokenizerView

    config = GPTDatasetConfig(random_seed=1234, sequence_length=SEQ, split="1,0,0",
                              blend=([str(tmp_path / n) for n in ("code", "ja", "en")], weights),
                              tokenizer=MegatronTokenizerView(2, 1024), reset_position_ids=False,
                              reset_attention_mask=False, eod_mask_loss=False, create_attention_mask=False)
    theirs = BlendedMegatronDatasetBuilder(GPTDataset, [400, 0, 0], lambda: True, config).build()[0]
    assert len(data.train) == 400 <= len(theirs)
    for i in range(400):
        sample = theirs[i]
        expected = torch.cat((sample["tokens"], sample["labels"][-1:]))
        assert torch.equal(data.train[i]["input_ids"], expected), f"sample {i}"


def test_documents_are_held_out_per_corpus_and_never_trained_on(tmp_path):
    write_corpus(tmp_path / "big", 200, seed=8)
    write_corpus(tmp_path / "small", 20, seed=9)
    write_corpus(tmp_path / "general", 15, seed=10)
    text = "[{prefix: big}, {prefix: small}]"
    recipe = load(cpt_recipe(tmp_path, text, seq_len=SEQ, max_steps=20, eval_fraction=0.05,
                             eval_corpora="[{prefix: general}]"))
    data = prepare_corpora(recipe, StandInTokenizer())
    assert set(data.eval) == {"big", "small", "general"}
    assert all(0 < len(windows) <= 8 for windows in data.eval.values())
    train_sets = data.train.source.datasets
    # Megatron's split "0.95,0.05,0": the last 10 of 200 documents; for 20 documents the last 1
    for number, (name, held) in enumerate((("big", range(190, 200)), ("small", range(19, 20)))):
        valid = data.eval[name].source
        assert set(np.asarray(valid.indices).tolist()) == set(held)
        assert set(np.asarray(valid.document_index).tolist()) <= set(held)
        trained = set(np.asarray(train_sets[number].document_index).tolist())
        assert trained == set(range(held.start)) and not trained & set(held)
        assert data.report.corpora[number].held_out_documents == len(held)
    assert set(np.asarray(data.eval["general"].source.indices).tolist()) == set(range(15))
    assert len(train_sets) == 2  # the eval-only corpus is not in the blend
    assert data.eval["big"][0]["input_ids"].shape == (SEQ + 1,)

    nothing = load(cpt_recipe(tmp_path, text, seq_len=SEQ, max_steps=20, eval_fraction=0.0, name="none.yaml"))
    assert prepare_corpora(nothing, StandInTokenizer()).eval == {}


def test_missing_corpus_is_refused_by_key_and_file(tmp_path):
    write_corpus(tmp_path / "here", 5, seed=11)
    recipe = load(cpt_recipe(tmp_path, "[{prefix: here}, {prefix: gone}]", seq_len=SEQ))
    with pytest.raises(UserError, match=rf"data\.corpora\.1\.prefix: no such corpus file: {tmp_path}/gone\.idx"):
        prepare_corpora(recipe, StandInTokenizer())


def test_a_corpus_tokenized_with_another_tokenizer_is_refused(tmp_path, tiny_tokenizer):
    from tune.data.cache import tokenizer_fingerprint

    write_corpus(tmp_path / "c", 30, seed=12)
    recipe = load(cpt_recipe(tmp_path, "[{prefix: c}]", seq_len=SEQ))
    manifest = tmp_path / "c.manifest.json"
    manifest.write_text(json.dumps({"tokenizer": {"fingerprint": "0" * 64, "source": "another-model"}}))
    with pytest.raises(UserError, match=r"data\.corpora\.0\.prefix: .*c was tokenized with another tokenizer"):
        prepare_corpora(recipe, tiny_tokenizer)
    manifest.write_text(json.dumps({"tokenizer": {"fingerprint": tokenizer_fingerprint(tiny_tokenizer)}}))
    assert len(prepare_corpora(recipe, tiny_tokenizer).train) == 40


def test_a_damaged_cache_entry_is_built_again(tmp_path):
    write_corpus(tmp_path / "c", 40, seed=13)
    recipe = load(cpt_recipe(tmp_path, "[{prefix: c}]", seq_len=SEQ))
    first = prepare_corpora(recipe, StandInTokenizer())
    expected = [first.train[i]["input_ids"] for i in range(len(first.train))]
    shuffle = next((tmp_path / "cache" / "corpora" / first.key / "megatron").glob("*shuffle_index.npy"))
    shuffle.unlink()
    said = []
    again = prepare_corpora(recipe, StandInTokenizer(), printer=said.append)
    assert not again.from_cache and again.key == first.key
    assert len(said) == 1 and "damaged" in said[0] and "is missing" in said[0]
    assert all(torch.equal(again.train[i]["input_ids"], expected[i]) for i in range(len(expected)))


def test_megatron_cannot_build_a_blend_alone_without_the_patch(tmp_path):
    """Pins why tune.data.corpus_megatron patches torch.distributed while it builds: megatron-core's
    BlendedDataset asks for the process's rank unguarded, so without a process group it cannot build
    its cached indices at all. When this test fails, upstream changed and the patch may go."""
    import torch.distributed as dist

    from tune.data.corpus_megatron import (BlendSpec, as_lone_process, build_blend, megatron_datasets)

    write_corpus(tmp_path / "a", 10, seed=14)
    write_corpus(tmp_path / "b", 10, seed=15)
    spec = BlendSpec((str(tmp_path / "a"), str(tmp_path / "b")), (0.5, 0.5), ("1,0,0", "1,0,0"), (), 20, SEQ, 1, 2, 1024)
    built = build_blend(spec, str(tmp_path / "indices"))  # patched: builds
    assert len(built.train) >= 20 and not dist.is_initialized()
    mc = megatron_datasets()
    with pytest.raises(ValueError, match="process group"):
        mc.BlendedDataset(built.train.datasets, [0.5, 0.5], 30, built.train.config)
    with as_lone_process():
        assert len(mc.BlendedDataset(built.train.datasets, [0.5, 0.5], 30, built.train.config)) == 30


def test_data_preview_shows_windows_then_tokens_shares_and_epochs(tmp_path, capsys):
    from tune.cli import main

    write_corpus(tmp_path / "law", 50, seed=16)
    write_corpus(tmp_path / "general", 200, seed=17)
    recipe = cpt_recipe(tmp_path, "[{prefix: law, repeat: 4}, {prefix: general}]", seq_len=SEQ, max_steps=50,
                        eval_fraction=0.02)
    assert main(["data", "preview", str(recipe), "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert "--- window 1 of 200 (" in out and "--- window 2 of 200 (" in out
    report = out.split("\n---\n")[1]
    assert "law: 50 documents" in report and "repeat 4, target" in report and "realized" in report
    assert "epochs seen; held out 1 document(s)" in report
    assert "planned: 50 steps x global batch 4 = 200 windows = 3,200 tokens" in report
    assert main(["data", "preview", str(recipe), "-n", "1", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["window"] == 0 and len(lines[0]["input_ids"]) == SEQ + 1 and lines[0]["corpus"] in ("law", "general")
    assert [c["name"] for c in lines[1]["stats"]["corpora"]] == ["law", "general"] and lines[1]["stats"]["samples"] == 200
