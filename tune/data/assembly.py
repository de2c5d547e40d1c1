"""Pipeline step 4: the training and eval sets in mixture order, and the counts of the data report.

Each entry of the mixture's train list (an upsampled row appears as often as it is drawn) points
at its built sample (step 3); dropped samples are left out, everything else is copied in order,
with its `dataset` index, into an Arrow stream file that ``datasets.Dataset.from_file``
memory-maps. The copy goes ``ASSEMBLY_BATCH`` rows at a time, each read on its own from step 3's
token runs (tune.data.token_runs), so memory stays flat. Training entries are counted per dataset, as often as they appear: samples,
tokens, supervised tokens, truncated, dropped for length, dropped for having no supervised token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from tune.data.arrow_files import BatchWriter
from tune.data.mixture import Mixture
from tune.data.build_samples import BuiltSamples
from tune.data.report import DatasetStats
from tune.data.sample_builder import DROPPED, DROPPED_OVERLONG, DROPPED_UNSUPERVISED, TRUNCATED, SampleBuilder

ASSEMBLY_BATCH = 1024


@dataclass(frozen=True)
class Assembled:
    """The sets written: how many samples each holds, and the padded lengths of the training
    samples in training order (flattened, as the builder's ``padded_lengths``)."""

    train_samples: int
    eval_samples: int
    train_lengths: np.ndarray


def assemble(mixture: Mixture, built: BuiltSamples, builder: SampleBuilder, stats: list[DatasetStats],
             train_path: Path, eval_path: Path) -> Assembled:
    """Write the train and eval sets (module docstring) and count the training entries into ``stats``."""
    train = _positions(mixture.train, built)
    _count(train, mixture.datasets_of(mixture.train), built, stats)
    train_kept = train[(built.flags[train] & DROPPED) == 0]
    train_datasets = mixture.datasets_of(built.ids[train_kept])
    _write(train_kept, train_datasets, built, builder, train_path)
    held = _positions(mixture.eval, built)
    eval_kept = held[(built.flags[held] & DROPPED) == 0]
    _write(eval_kept, mixture.datasets_of(built.ids[eval_kept]), built, builder, eval_path)
    return Assembled(len(train_kept), len(eval_kept), built.lengths[train_kept].reshape(-1))


def _positions(ids: np.ndarray, built: BuiltSamples) -> np.ndarray:
    """The built sample of each global id (every id the mixture names was built)."""
    return np.searchsorted(built.ids, ids)


def _count(positions: np.ndarray, datasets: np.ndarray, built: BuiltSamples, stats: list[DatasetStats]) -> None:
    flags = built.flags[positions]
    kept = (flags & DROPPED) == 0
    size = len(stats)
    samples = np.bincount(datasets[kept], minlength=size)
    tokens, supervised = np.zeros(size, np.int64), np.zeros(size, np.int64)
    np.add.at(tokens, datasets[kept], built.tokens[positions[kept]])
    np.add.at(supervised, datasets[kept], built.supervised[positions[kept]])
    flagged = {flag: np.bincount(datasets[(flags & flag) != 0], minlength=size)
               for flag in (TRUNCATED, DROPPED_OVERLONG, DROPPED_UNSUPERVISED)}
    for index, stat in enumerate(stats):
        stat.samples += int(samples[index])
        stat.tokens += int(tokens[index])
        stat.supervised_tokens += int(supervised[index])
        stat.truncated += int(flagged[TRUNCATED][index])
        stat.dropped_overlong += int(flagged[DROPPED_OVERLONG][index])
        stat.dropped_unsupervised += int(flagged[DROPPED_UNSUPERVISED][index])


def _write(positions: np.ndarray, datasets: np.ndarray, built: BuiltSamples, builder: SampleBuilder, path: Path) -> None:
    writer = BatchWriter(path, builder.schema, stream=True)
    try:
        for start in range(0, len(positions), ASSEMBLY_BATCH):
            chunk = positions[start:start + ASSEMBLY_BATCH]
            columns = built.runs.read(chunk, [field.type for field in builder.schema][:-1])
            columns.append(pa.array(datasets[start:start + ASSEMBLY_BATCH], type=pa.int64()))
            writer.write_table(pa.Table.from_arrays(columns, schema=builder.schema))
    finally:
        writer.close()
