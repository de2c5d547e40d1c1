"""Mix converted records of several datasets into a training list and a held-out eval list.

Order of operations, each step deterministic given the recipe seed:

1. exact duplicates removed (``data.dedup``), across datasets too: the first in recipe order stays;
2. each dataset shuffled, then cut to ``max_rows``;
3. eval rows held out from the pooled unique rows *before* any upsampling, so an upsampled row
   never sits on both sides: min(``eval_max_rows``, floor(``eval_fraction`` x rows));
4. weighting: a ``weight`` w repeats a dataset's rows int(w) times and draws round(frac(w) x n)
   more; with ``share``s the mixture holds ``mixture_size`` rows (default: all rows left), each
   dataset's count fixed by its share (largest remainders), its rows cycled when it is short;
5. the training list shuffled.

Counts land in each dataset's ``DatasetStats`` (duplicates, held_out, train_rows).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from tune.config.schema import DataSection
from tune.data.records import Record, record_key
from tune.data.report import DatasetStats


@dataclass
class Mixture:
    train: list[tuple[int, Record]]  # (dataset index, record)
    eval: list[tuple[int, Record]]


def build_mixture(records: list[list[Record]], stats: list[DatasetStats], data: DataSection, seed: int) -> Mixture:
    """The training and eval lists for ``records[i]`` (the rows of ``data.datasets[i]``)."""
    rng = random.Random(seed)
    pools = _deduplicate(records, stats) if data.dedup else [list(r) for r in records]
    for pool, entry in zip(pools, data.datasets):
        rng.shuffle(pool)
        del pool[entry.max_rows or len(pool):]
    eval_rows = _hold_out(pools, stats, data, rng)
    train = _weight(pools, data, rng)
    for index, _ in train:
        stats[index].train_rows += 1
    rng.shuffle(train)
    return Mixture(train, eval_rows)


def _deduplicate(records: list[list[Record]], stats: list[DatasetStats]) -> list[list[Record]]:
    seen: set[str] = set()
    pools = []
    for rows, stat in zip(records, stats):
        pool = []
        for record in rows:
            key = record_key(record)
            if key in seen:
                stat.duplicates += 1
                continue
            seen.add(key)
            pool.append(record)
        pools.append(pool)
    return pools


def _hold_out(pools, stats, data: DataSection, rng: random.Random) -> list[tuple[int, Record]]:
    total = sum(len(pool) for pool in pools)
    count = min(data.eval_max_rows, math.floor(data.eval_fraction * total))
    if count == 0:
        return []
    flat = [(i, j) for i, pool in enumerate(pools) for j in range(len(pool))]
    chosen = sorted(rng.sample(flat, count))
    held = [(i, pools[i][j]) for i, j in chosen]
    chosen_set = set(chosen)
    for i, pool in enumerate(pools):
        pools[i] = [record for j, record in enumerate(pool) if (i, j) not in chosen_set]
        stats[i].held_out = sum(1 for k, _ in chosen if k == i)
    return held


def _weight(pools, data: DataSection, rng: random.Random) -> list[tuple[int, Record]]:
    if data.datasets[0].share is not None:
        size = data.mixture_size or sum(len(pool) for pool in pools)
        counts = _allocate(size, [entry.share for entry in data.datasets])
    else:
        counts = [_weighted_count(len(pool), entry.weight or 1.0) for pool, entry in zip(pools, data.datasets)]
    train = []
    for index, (pool, count) in enumerate(zip(pools, counts)):
        train += [(index, record) for record in _draw(pool, count, rng)]
    return train


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


def _draw(pool: list[Record], count: int, rng: random.Random) -> list[Record]:
    """``count`` rows of ``pool``: whole passes over it, then a seeded sample for the rest."""
    if not pool:
        return []
    whole, rest = divmod(count, len(pool))
    return pool * whole + rng.sample(pool, rest)
