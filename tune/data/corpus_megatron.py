"""Megatron-Core's own GPTDataset and BlendedDataset, built for one process with no collective.

PATCH (the one place tune patches Megatron-Core; tests/data/test_corpus_pipeline.py pins why): while
``as_lone_process`` is active, ``torch.distributed.is_initialized`` answers False and
``torch.distributed.get_rank`` answers 0. megatron-core 0.16's dataset classes decide who builds their
index files from the process group: GPTDataset builds them only on global rank 0 of an initialized
group (another rank expects them on disk already), BlendedDataset calls ``get_rank()`` unguarded when
it builds (so it cannot build at all in a process without a group), and BlendedMegatronDatasetBuilder
adds ``barrier()``s. tune decides who prepares by itself (tune.data.cache.JobPreparation: rank 0, or
the first process of each node with node-local caches) and must run no collective while preparing
(tune.methods.run_inputs), so Megatron's classes are built as if this process were alone; nothing
else runs in this process meanwhile.

What is built, the way BlendedMegatronDatasetBuilder._build_blended_dataset_splits builds a blend
(read megatron/core/datasets/blended_megatron_dataset_builder.py beside this), with one difference:
each corpus gets its own split (``corpus_split``), so that a small corpus still holds out a document.

    per corpus i   IndexedDataset(prefix_i) (GPTDataset.build_low_level_dataset)
                   train documents: Megatron's split range of the corpus's split
                   GPTDataset(train range, num_samples = ceil(ceil(N x w_i) x (1 + surplus)), Split.train)
                   GPTDataset(held-out range, one epoch, Split.valid) when the split holds any out
    the blend      BlendedDataset(train GPTDatasets, w, size = sum_i ceil(N x w_i))   (N: planned samples)
    eval corpora   GPTDataset(all documents, one epoch, Split.valid), config split "0,1,0"

Config as LLM-jp trains: no position reset, no attention-mask reset, no EOD loss mask, seed =
`train.seed`, sequence_length = `data.max_seq_len`, one extra token per window (Megatron's default).
Megatron's index files go into ``path_to_cache``; built once, they are loaded (memory-mapped) after.
Megatron logs through `logging` (kept to errors) and warns at import that Transformer Engine and Apex
are absent (silenced).
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from megatron.core.datasets.blended_dataset import BlendedDataset
    from megatron.core.datasets.gpt_dataset import GPTDataset

_LONE = threading.Lock()
VALID_ONLY_SPLIT = "0,1,0"
NO_SPLIT = "1,0,0"


def megatron_datasets():
    """``megatron.core.datasets`` modules (imported on first use, quietly): a namespace with
    ``GPTDataset``, ``GPTDatasetConfig``, ``BlendedDataset``, ``Split`` and the split helpers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets import blended_megatron_dataset_builder as builder
        from megatron.core.datasets import blended_megatron_dataset_config as config
        from megatron.core.datasets.blended_dataset import BlendedDataset
        from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
        from megatron.core.datasets.utils import Split, normalize
    logging.getLogger("megatron.core.datasets").setLevel(logging.ERROR)

    return SimpleNamespace(
        GPTDataset=GPTDataset, GPTDatasetConfig=GPTDatasetConfig, BlendedDataset=BlendedDataset, Split=Split,
        normalize=normalize, parse_and_normalize_split=config.parse_and_normalize_split,
        convert_split_vector_to_split_matrix=config.convert_split_vector_to_split_matrix,
        sizes_per_dataset=builder._get_size_per_split_per_dataset,  # Megatron's own sizing (module docstring)
    )


@contextmanager
def as_lone_process() -> Iterator[None]:
    """Megatron's dataset classes see no process group while this is active (module docstring: PATCH)."""
    import torch.distributed as dist

    with _LONE:  # one patched block at a time: threads of one process never restore each other's patch
        saved = dist.is_initialized, dist.get_rank
        dist.is_initialized = lambda: False
        dist.get_rank = lambda group=None: 0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            dist.is_initialized, dist.get_rank = saved


class MegatronTokenizerView:
    """What GPTDataset reads of a tokenizer: ``eod`` (for masks tune leaves off, so it never changes a
    sample), ``vocab_size`` and ``unique_identifiers`` (part of Megatron's index-file description).
    No ``pad``: Megatron then pads with -1, which no window of a corpus ever needs (windows are
    always full)."""

    def __init__(self, eod: int, vocab_size: int) -> None:
        self.eod = eod
        self.vocab_size = vocab_size
        self.unique_identifiers = OrderedDict(
            [("class", "tune.data.corpus_megatron.MegatronTokenizerView"), ("eod", eod), ("vocab_size", vocab_size)])


def split_ranges(split: str, sequences: int) -> list[tuple[int, int] | None]:
    """Megatron's [train, valid, test] sequence ranges of a corpus of ``sequences`` under ``split``
    (its split matrix, rounded as BlendedMegatronDatasetBuilder._build_megatron_dataset_splits does)."""
    mc = megatron_datasets()
    matrix = mc.convert_split_vector_to_split_matrix(mc.parse_and_normalize_split(split))
    return [None if bounds is None else (int(round(bounds[0] * float(sequences))), int(round(bounds[1] * float(sequences))))
            for bounds in matrix]


def corpus_split(eval_fraction: float, sequences: int) -> str:
    """The Megatron split string (`--split`) of a corpus of ``sequences`` documents: ``1-f,f,0`` for
    `data.eval_fraction` f, so that the last f of its documents are held out as Megatron holds them
    out; when that rounds to no document, one document (the last) is held out; nothing for f = 0
    or a corpus of one document."""
    if eval_fraction <= 0 or sequences < 2:
        return NO_SPLIT
    split = f"{1 - eval_fraction:.12f},{eval_fraction:.12f},0"
    held = split_ranges(split, sequences)[1]
    if held is not None and held[1] > held[0]:
        return split
    return f"{sequences - 1},1,0"


@dataclass(frozen=True)
class BlendSpec:
    """Everything Megatron's indices depend on: the corpora (``prefixes``, normalized ``weights``,
    one split string each), the eval-only corpora, the planned training samples, sequence length,
    seed, and the tokenizer's EOD id and vocabulary size."""

    prefixes: tuple[str, ...]
    weights: tuple[float, ...]
    splits: tuple[str, ...]
    eval_prefixes: tuple[str, ...]
    train_samples: int
    seq_len: int
    seed: int
    eod: int
    vocab_size: int


@dataclass
class BuiltBlend:
    """Megatron's datasets for a BlendSpec: the blended ``train`` set (a BlendedDataset of at least
    ``train_samples`` samples), each corpus's ``held_out`` GPTDataset (None when its split holds
    nothing out), each eval corpus's GPTDataset, and each corpus's train and held-out ranges."""

    train: BlendedDataset | None
    held_out: list[GPTDataset | None]
    eval_corpora: list[GPTDataset]
    train_ranges: list[tuple[int, int]]
    held_out_ranges: list[tuple[int, int] | None]


def build_blend(spec: BlendSpec, path_to_cache: str) -> BuiltBlend:
    """Megatron's datasets for ``spec`` (module docstring), their index files in ``path_to_cache``:
    built there when absent, loaded when present."""
    mc = megatron_datasets()
    tokenizer = MegatronTokenizerView(spec.eod, spec.vocab_size)

    def config(split: str, blend=None):
        return mc.GPTDatasetConfig(
            random_seed=spec.seed, sequence_length=spec.seq_len, blend=blend or ([], None), split=split,
            path_to_cache=path_to_cache, tokenizer=tokenizer, reset_position_ids=False,
            reset_attention_mask=False, eod_mask_loss=False, create_attention_mask=False)

    weights = mc.normalize(list(spec.weights))
    blend_config = config(NO_SPLIT, (list(spec.prefixes), weights))
    target = [sizes[0] for sizes in mc.sizes_per_dataset(weights, [spec.train_samples, 0, 0])]
    buffer = [sizes[0] for sizes in mc.sizes_per_dataset(weights, [spec.train_samples, 0, 0],
                                                         surplus=blend_config.mid_level_dataset_surplus)]
    built = BuiltBlend(None, [], [], [], [])
    train_sets = []
    with as_lone_process():
        for prefix, split, samples in zip(spec.prefixes, spec.splits, buffer):
            corpus_config = config(split, ([prefix], None))
            low = mc.GPTDataset.build_low_level_dataset(prefix, corpus_config)
            ranges = split_ranges(split, mc.GPTDataset.numel_low_level_dataset(low))
            train_range, held_range = ranges[0], ranges[1]
            train_sets.append(mc.GPTDataset(low, prefix, _documents(train_range), samples, mc.Split.train, corpus_config))
            built.train_ranges.append(train_range)
            if held_range is not None and held_range[1] > held_range[0]:
                built.held_out.append(mc.GPTDataset(low, prefix, _documents(held_range), None, mc.Split.valid, corpus_config))
                built.held_out_ranges.append(held_range)
            else:
                built.held_out.append(None)
                built.held_out_ranges.append(None)
        built.train = mc.BlendedDataset(train_sets, weights, sum(target), blend_config)
        for prefix in spec.eval_prefixes:
            eval_config = config(VALID_ONLY_SPLIT, ([prefix], None))
            low = mc.GPTDataset.build_low_level_dataset(prefix, eval_config)
            every = (0, mc.GPTDataset.numel_low_level_dataset(low))
            built.eval_corpora.append(mc.GPTDataset(low, prefix, _documents(every), None, mc.Split.valid, eval_config))
    return built


def _documents(bounds: tuple[int, int]):
    import numpy as np

    return np.arange(bounds[0], bounds[1], dtype=np.int32)
