"""Mixtures: weights and shares, dedup, max_rows, eval hold-out before upsampling, determinism."""

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from tune.config.schema import DataSection
from tune.data.mixture import build_mixture
from tune.data.records import Conversation, record_digest, record_key
from tune.data.report import DatasetStats


def conv(tag: str) -> Conversation:
    return Conversation(({"role": "user", "content": f"q {tag}"}, {"role": "assistant", "content": f"a {tag}"}))


def data(*entries, **options) -> DataSection:
    return DataSection(datasets=[{"path": f"/d{i}.jsonl", **e} for i, e in enumerate(entries)], **options)


def mix(records, section, seed=0):
    """The mixture of ``records[i]`` (dataset i's rows), with its train / eval lists as (dataset, record)."""
    stats = [DatasetStats(f"d{i}") for i in range(len(records))]
    keys = [np.frombuffer(b"".join(record_digest(r) for r in rows), dtype="V16") for rows in records]
    mixture = build_mixture(keys, stats, section, seed)
    chosen = {name: [(i, records[i][row]) for i, row in mixture.pairs(getattr(mixture, name))] for name in ("train", "eval")}
    return SimpleNamespace(**chosen), stats


def test_upsampling_factors_repeat_rows_and_draw_the_fraction():
    a, b = [conv(f"a{i}") for i in range(10)], [conv(f"b{i}") for i in range(10)]
    mixture, stats = mix([a, b], data({"weight": 16}, {"weight": 1.5}, eval_fraction=0))
    counts = Counter(index for index, _ in mixture.train)
    assert counts == {0: 160, 1: 15}
    assert Counter(record_key(r) for i, r in mixture.train if i == 0) == {record_key(r): 16 for r in a}
    assert (stats[0].train_rows, stats[1].train_rows) == (160, 15)


def test_shares_hold_within_one_percent_over_a_large_draw():
    pools = [[conv(f"{name}{i}") for i in range(n)] for name, n in (("a", 50), ("b", 3000), ("c", 700))]
    section = data({"share": 0.5}, {"share": 0.3}, {"share": 0.2}, eval_fraction=0, mixture_size=20000)
    mixture, _ = mix(pools, section)
    counts = Counter(index for index, _ in mixture.train)
    assert sum(counts.values()) == 20000
    for index, share in enumerate((0.5, 0.3, 0.2)):
        assert abs(counts[index] / 20000 - share) < 0.01


def test_duplicates_are_removed_across_datasets_and_counted():
    mixture, stats = mix([[conv("x"), conv("x"), conv("y")], [conv("y"), conv("z")]], data({}, {}, eval_fraction=0))
    keys = Counter(record_key(r) for _, r in mixture.train)
    assert sorted(keys.values()) == [1, 1, 1]
    assert (stats[0].duplicates, stats[1].duplicates) == (1, 1)


def test_eval_rows_are_held_out_before_upsampling_and_never_trained():
    rows = [conv(f"r{i}") for i in range(200)]
    mixture, stats = mix([rows], data({"weight": 3}, eval_fraction=0.1, eval_max_rows=15))
    assert len(mixture.eval) == 15 and stats[0].held_out == 15
    held = {record_key(r) for _, r in mixture.eval}
    assert not held & {record_key(r) for _, r in mixture.train}
    assert len(mixture.train) == 3 * 185


def test_max_rows_and_seed_make_a_deterministic_mixture():
    rows = [conv(f"r{i}") for i in range(100)]
    section = data({"max_rows": 30}, eval_fraction=0)
    first, _ = mix([rows], section, seed=1)
    again, _ = mix([rows], section, seed=1)
    other, _ = mix([rows], section, seed=2)
    assert len(first.train) == 30
    assert [record_key(r) for _, r in first.train] == [record_key(r) for _, r in again.train]
    assert [record_key(r) for _, r in first.train] != [record_key(r) for _, r in other.train]


def test_shares_must_cover_every_dataset_and_add_up_to_one():
    with pytest.raises(ValueError, match="every dataset has a `share`"):
        data({"share": 0.5}, {})
    with pytest.raises(ValueError, match="add up to 0.9"):
        data({"share": 0.5}, {"share": 0.4})


def test_per_dataset_eval_split_holds_out_each_datasets_first_rows_as_ft_llm_2026():
    """ft-llm-2026 (tuning/sft_dataset.py): dev = each dataset's first min(max_dev_samples, int(n x ratio)) rows."""
    a, b = [conv(f"a{i}") for i in range(50)], [conv(f"b{i}") for i in range(2000)]
    mixture, stats = mix([a, b], data({}, {}, eval_fraction=0.1, eval_max_rows=100, eval_split="per_dataset"))
    assert [r for _, r in mixture.eval] == a[:5] + b[:100]
    assert (stats[0].held_out, stats[1].held_out) == (5, 100)
    assert not {record_key(r) for _, r in mixture.eval} & {record_key(r) for _, r in mixture.train}
    assert len(mixture.train) == 45 + 1900
