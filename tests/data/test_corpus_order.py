"""The global sample order of a cpt run: the same for a cache hit and a miss, for any topology of the same
global batch, for the rank that waits and the rank that prepares; resumable in O(1); blended to target."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from tests.data.corpus_helpers import StandInTokenizer, cpt_recipe, load, write_corpus
from tune.data import cache
from tune.data.corpus_pipeline import prepare_corpora

SEQ = 16
MIX = "[{prefix: code, repeat: 8}, {prefix: ja, repeat: 4}, {prefix: en}]"


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "WAIT_POLL_S", 0.02)


@pytest.fixture
def corpora(tmp_path):
    """code (small), ja (medium), en (large), as LLM-jp's phase-1 mixture has them (relatively)."""
    for name, count, seed in (("code", 40, 1), ("ja", 120, 2), ("en", 400, 3)):
        write_corpus(tmp_path / name, count, seed=seed)
    return tmp_path


def windows(data, count=None) -> list[torch.Tensor]:
    return [data.train[i]["input_ids"] for i in range(count or len(data.train))]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_a_cache_hit_gives_the_order_of_the_miss_and_resumes_in_place(corpora):
    recipe = load(cpt_recipe(corpora, MIX, seq_len=SEQ, max_steps=30, batch=4))
    miss = prepare_corpora(recipe, StandInTokenizer())
    hit = prepare_corpora(recipe, StandInTokenizer())
    assert not miss.from_cache and hit.from_cache and miss.key == hit.key
    assert len(miss.train) == 120 and miss.steps == 30
    order = windows(miss)
    assert same(order, windows(hit))
    resumed = hit.train.starting_at(52)
    assert len(resumed) == 68
    assert same([resumed[j]["input_ids"] for j in range(68)], order[52:])
    assert same([resumed.starting_at(8)[j]["input_ids"] for j in range(60)], order[60:])
    assert len(hit.train.starting_at(500)) == 0
    # another seed is another order
    other = prepare_corpora(load(corpora / "recipe.yaml", ["train.seed=7"]), StandInTokenizer())
    assert other.key != miss.key and not same(windows(other), order)


def test_the_order_depends_on_the_global_batch_not_on_the_topology(corpora):
    one = load(cpt_recipe(corpora, MIX, seq_len=SEQ, max_steps=25, batch=2, name="one.yaml"),
               ["train.grad_accumulation=2"])
    four = load(cpt_recipe(corpora, MIX, seq_len=SEQ, max_steps=25, batch=1, name="four.yaml"),
                ["launch.nodes=2", "launch.processes_per_node=2", "launch.strategy=fsdp2"])
    a, b = prepare_corpora(one, StandInTokenizer()), prepare_corpora(four, StandInTokenizer())
    assert a.key == b.key and len(a.train) == len(b.train) == 100
    assert same(windows(a), windows(b))


def test_a_waiting_rank_gets_the_preparing_ranks_samples(corpora):
    recipe = load(cpt_recipe(corpora, MIX, seq_len=SEQ, max_steps=40, batch=4))
    waiter = cache.JobPreparation(prepares=False, preparer="rank 0", token="job1", announces=True)
    preparer = cache.JobPreparation(prepares=True, preparer="rank 0", token="job1")
    got = {}

    def rank1():
        got["data"] = prepare_corpora(recipe, StandInTokenizer(), job=waiter)

    thread = threading.Thread(target=rank1)
    thread.start()
    thread.join(0.3)
    assert thread.is_alive()  # nothing prepared yet: rank 1 waits on the file system
    rank0 = prepare_corpora(recipe, StandInTokenizer(), job=preparer)
    thread.join(60)
    assert not thread.is_alive()
    assert not rank0.from_cache and got["data"].from_cache
    assert same(windows(rank0), windows(got["data"]))


def test_a_failed_preparation_stops_the_waiting_ranks(corpora, monkeypatch):
    from tune.data import corpus_megatron

    recipe = load(cpt_recipe(corpora, MIX, seq_len=SEQ, max_steps=10, batch=4))

    def broken(spec, path):
        raise OSError("disk full")

    monkeypatch.setattr(corpus_megatron, "build_blend", broken)
    with pytest.raises(OSError):
        prepare_corpora(recipe, StandInTokenizer(), job=cache.JobPreparation(True, "rank 0", "job2"))
    with pytest.raises(cache.PreparedElsewhereFailed, match="by rank 0 failed .*disk full"):
        prepare_corpora(recipe, StandInTokenizer(), job=cache.JobPreparation(False, "rank 0", "job2"))


@pytest.mark.parametrize("mode", ["repeat", "share"])
def test_realized_shares_are_within_one_percent_of_the_targets(corpora, mode):
    text = MIX if mode == "repeat" else "[{prefix: code, share: 0.5}, {prefix: ja, share: 0.3}, {prefix: en, share: 0.2}]"
    recipe = load(cpt_recipe(corpora, text, seq_len=SEQ, max_steps=5000, batch=4, name=f"{mode}.yaml"))
    data = prepare_corpora(recipe, StandInTokenizer())
    assert len(data.train) == 20_000
    targets = np.array([c.target for c in data.report.corpora])
    if mode == "repeat":
        tokens = np.array([c.tokens for c in data.report.corpora])
        raw = tokens * np.array([8, 4, 1])
        assert np.allclose(targets, raw / raw.sum())
    else:
        assert np.allclose(targets, [0.5, 0.3, 0.2])
    drawn = np.bincount(np.asarray(data.train.source.dataset_index[:20_000]), minlength=3) / 20_000
    assert np.all(np.abs(drawn - targets) < 0.01), (drawn, targets)
    assert [data.report.realized(c) for c in data.report.corpora] == pytest.approx(drawn)
    for i in (0, 1, 2, 9_999, 19_999):  # the blended index says which corpus each window comes from
        assert data.train.source[i]["dataset_id"] == data.train.source.dataset_index[i]
    lines = "\n".join(data.report.lines())
    assert "code: 40 documents" in lines and "realized" in lines and "epochs seen" in lines
    assert "planned: 5,000 steps x global batch 4 = 20,000 windows = 320,000 tokens" in lines


@pytest.mark.multiprocess
def test_two_processes_one_builds_the_other_waits_and_both_read_the_same(corpora, tmp_path):
    """A real job of two processes with a gloo group and no collective while preparing: rank 1 waits on the
    file system for rank 0's indices; then, for another recipe, rank 0 waits for rank 1's (the first process
    of another node preparing into its node-local cache, which Megatron alone would not let build)."""
    import subprocess
    import sys

    from tests.distributed.launching import REPO, worker_env

    first = cpt_recipe(corpora, MIX, seq_len=SEQ, max_steps=40, batch=4, name="first.yaml")
    second = cpt_recipe(corpora, MIX, seq_len=SEQ, max_steps=30, batch=4, name="second.yaml")
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(_port()),
               str(REPO / "tests" / "data" / "corpus_rank_worker.py"), str(out), str(first), str(second)]
    done = subprocess.run(command, env=worker_env(tmp_path / "cache"), cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for stem, preparer, count in (("first", 0, 160), ("second", 1, 120)):
        ranks = [json.loads((out / f"{stem}-rank{r}.json").read_text()) for r in (0, 1)]
        assert [r["from_cache"] for r in ranks] == [rank != preparer for rank in (0, 1)]
        assert ranks[0]["windows"] == ranks[1]["windows"] and len(ranks[0]["windows"]) == count
    local = prepare_corpora(load(first), StandInTokenizer())  # the same cache: one process reads the same
    assert local.from_cache and [w.tolist() for w in windows(local)] == ranks_of(out, "first")


def ranks_of(out, stem: str) -> list:
    return json.loads((out / f"{stem}-rank0.json").read_text())["windows"]


def _port() -> int:
    from tests.distributed.launching import free_port

    return free_port()
