"""Pipeline step 2: which records train and which are held out, as row numbers, never the records themselves.

The input is each dataset's duplicate keys in source order (step 1); the output names rows by a
global id: row r of dataset d is ``offsets[d] + r``. Order of operations, each step deterministic
given the recipe seed:

1. exact duplicates removed (``data.dedup``), across datasets too: the first in recipe order stays;
2. each dataset shuffled, then cut to ``max_rows``;
3. eval rows held out from the pooled unique rows *before* any upsampling, so an upsampled row
   never sits on both sides: min(``eval_max_rows``, floor(``eval_fraction`` x rows)) drawn over all
   datasets (``eval_split: global``), or each dataset's first min(``eval_max_rows``,
   floor(``eval_fraction`` x its rows)) rows in source order, taken before step 2 (``per_dataset``);
4. weighting: a ``weight`` w repeats a dataset's rows int(w) times and draws round(frac(w) x n)
   more; with ``share``s the mixture holds ``mixture_size`` rows (default: all rows left), each
   dataset's count fixed by its share (largest remainders), its rows cycled when it is short;
5. the training list shuffled.

Memory: 8 bytes per row in each list (``array('q')``) and 16 per key, whatever the records hold.
The random draws are Python's ``random.Random(seed)`` over these lists, so a mixture is the same
on every machine and Python version tune supports. Counts land in each dataset's
``DatasetStats`` (duplicates, held_out, train_rows).
"""

from __future__ import annotations

import math
import random
from array import array
from dataclasses import dataclass

import numpy as np

from tune.config.schema import DataSection
from tune.data.report import DatasetStats


@dataclass
class Mixture:
    """The chosen rows as global ids (see the module docstring), each list as int64."""

    offsets: np.ndarray  # datasets + 1 cumulative row counts: dataset d owns ids [offsets[d], offsets[d + 1])
    train: np.ndarray  # in training order; an upsampled row repeats
    eval: np.ndarray  # held-out rows, ordered by dataset then drawn position

    def datasets_of(self, ids: np.ndarray) -> np.ndarray:
        """The dataset index of each global id in ``ids``."""
        return np.searchsorted(self.offsets, ids, side="right") - 1

    def pairs(self, ids: np.ndarray) -> list[tuple[int, int]]:
        """``(dataset, row)`` for each global id (for reports and tests; not for large lists)."""
        datasets = self.datasets_of(ids)
        return [(int(d), int(i - self.offsets[d])) for d, i in zip(datasets, ids)]


def build_mixture(keys: list[np.ndarray], stats: list[DatasetStats], data: DataSection, seed: int) -> Mixture:
    """The training and eval rows of the datasets whose record keys (in source order) are ``keys[i]``."""
    rng = random.Random(seed)
    offsets = np.concatenate([[0], np.cumsum([len(k) for k in keys], dtype=np.int64)]).astype(np.int64)
    pools = _deduplicate(keys, stats) if data.dedup else [array("q", range(len(k))) for k in keys]
    held = _hold_out_first_rows(pools, stats, data) if data.eval_split == "per_dataset" else []
    for pool, entry in zip(pools, data.datasets):
        rng.shuffle(pool)
        del pool[entry.max_rows or len(pool):]
    if data.eval_split == "global":
        held = _hold_out(pools, stats, data, rng)
    train = _weight(pools, data, rng, offsets)
    for index, pool_train in enumerate(_counts_by_dataset(train, offsets)):
        stats[index].train_rows += pool_train
    rng.shuffle(train)
    eval_ids = np.array([offsets[i] + row for i, row in held], dtype=np.int64)
    return Mixture(offsets, np.frombuffer(train, dtype=np.int64).copy() if len(train) else np.empty(0, np.int64), eval_ids)


def _deduplicate(keys: list[np.ndarray], stats: list[DatasetStats]) -> list[array]:
    """Per dataset, the rows whose key did not appear earlier (in recipe order, then source order)."""
    everything = np.concatenate(keys) if keys else np.empty(0, dtype="V16")
    first = np.zeros(len(everything), dtype=bool)
    if len(everything):
        _, first_index = np.unique(everything, return_index=True)
        first[first_index] = True
    pools, start = [], 0
    for key, stat in zip(keys, stats):
        kept = np.flatnonzero(first[start:start + len(key)])
        stat.duplicates += len(key) - len(kept)
        pools.append(array("q", kept.tolist()))
        start += len(key)
    return pools


def _hold_out(pools: list[array], stats: list[DatasetStats], data: DataSection, rng: random.Random) -> list[tuple[int, int]]:
    """Hold ``count`` rows out, drawn over the pooled rows (dataset-major, then pool position)."""
    total = sum(len(pool) for pool in pools)
    count = min(data.eval_max_rows, math.floor(data.eval_fraction * total))
    if count == 0:
        return []
    starts = np.cumsum([0] + [len(pool) for pool in pools])
    chosen = sorted(rng.sample(range(total), count))
    by_dataset: list[list[int]] = [[] for _ in pools]
    for position in chosen:
        index = int(np.searchsorted(starts, position, side="right") - 1)
        by_dataset[index].append(position - int(starts[index]))
    held = []
    for index, positions in enumerate(by_dataset):
        pool = pools[index]
        held += [(index, pool[j]) for j in positions]
        removed = set(positions)
        pools[index] = array("q", (row for j, row in enumerate(pool) if j not in removed))
        stats[index].held_out = len(positions)
    return held


def _hold_out_first_rows(pools: list[array], stats: list[DatasetStats], data: DataSection) -> list[tuple[int, int]]:
    """`eval_split: per_dataset`: each dataset's first min(``eval_max_rows``, floor(``eval_fraction`` x its
    rows)) rows in source order, as LLM-jp's ft-llm-2026 splits its dev set (tuning/sft_dataset.py)."""
    held = []
    for index, pool in enumerate(pools):
        count = min(data.eval_max_rows, math.floor(data.eval_fraction * len(pool)))
        held += [(index, row) for row in pool[:count]]
        del pool[:count]
        stats[index].held_out = count
    return held


def _weight(pools: list[array], data: DataSection, rng: random.Random, offsets: np.ndarray) -> array:
    if data.datasets[0].share is not None:
        size = data.mixture_size or sum(len(pool) for pool in pools)
        counts = _allocate(size, [entry.share for entry in data.datasets])
    else:
        counts = [_weighted_count(len(pool), entry.weight or 1.0) for pool, entry in zip(pools, data.datasets)]
    train = array("q")
    for index, (pool, count) in enumerate(zip(pools, counts)):
        base = int(offsets[index])
        train.extend(base + row for row in _draw(pool, count, rng))
    return train


def _counts_by_dataset(train: array, offsets: np.ndarray) -> list[int]:
    ids = np.frombuffer(train, dtype=np.int64) if len(train) else np.empty(0, np.int64)
    datasets = np.searchsorted(offsets, ids, side="right") - 1
    return np.bincount(datasets, minlength=len(offsets) - 1).tolist()


def _weighted_count(rows: int, weight: float) -> int:
    return int(weight) * rows + round((weight - int(weight)) * rows)


def _allocate(size: int, shares: list[float]) -> list[int]:
    """Split ``size`` rows by ``shares`` (largest remainders), so the counts add up exactly."""
    exact = [size * share for share in shares]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: size - sum(counts)]:
        counts[i] += 1
    return counts


def _draw(pool: array, count: int, rng: random.Random) -> array:
    """``count`` rows of ``pool``: whole passes over it, then a seeded sample for the rest."""
    if not len(pool):
        return array("q")
    whole, rest = divmod(count, len(pool))
    return pool * whole + array("q", rng.sample(pool, rest))
