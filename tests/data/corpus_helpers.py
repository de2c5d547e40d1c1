"""Small Megatron corpora for the cpt data tests, written by Megatron-Core's own IndexedDatasetBuilder."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

BOS, EOD = 1, 2


class StandInTokenizer:
    """What tune.data.corpus_pipeline reads of a tokenizer: its EOS id (the EOD the corpora end each
    document with) and its vocabulary size."""

    eos_token_id = EOD

    def __init__(self, vocab_size: int = 1024) -> None:
        self.vocab_size = vocab_size

    def __len__(self) -> int:
        return self.vocab_size


def write_corpus(prefix: Path, documents: int, seed: int, low: int = 5, high: int = 60,
                 dtype=np.int32, first_id: int = 20) -> list[np.ndarray]:
    """Write ``documents`` random documents (BOS + random ids from ``first_id`` on + EOD) as
    ``prefix``.bin/.idx through Megatron's IndexedDatasetBuilder; the documents, in order."""
    from tune.data.corpus_megatron import megatron_datasets

    megatron_datasets()  # imports Megatron-Core quietly (its Transformer Engine / Apex warnings)
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    rng = np.random.default_rng(seed)
    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=dtype)
    written = []
    for _ in range(documents):
        body = rng.integers(first_id, first_id + 900, int(rng.integers(low, high)))
        ids = np.concatenate([[BOS], body, [EOD]]).astype(np.int64)
        builder.add_document(ids, [len(ids)])
        written.append(ids)
    builder.finalize(f"{prefix}.idx")
    return written


def cpt_recipe(folder: Path, corpora: str, *, seq_len: int = 16, max_steps: int | None = 10, batch: int = 4,
               eval_fraction: float = 0.0, eval_corpora: str = "[]", extra: str = "", name: str = "recipe.yaml") -> Path:
    """A cpt recipe file in ``folder`` on the tiny twin; ``corpora`` and ``eval_corpora`` are YAML lists of
    `data.corpora` / `data.eval_corpora`; ``extra`` is appended (more top-level sections)."""
    steps = f"max_steps: {max_steps}, " if max_steps else ""
    text = textwrap.dedent(f"""\
        model: {{name: tiny-llm-jp-4-8b}}
        method: {{name: cpt}}
        data:
          corpora: {corpora}
          max_seq_len: {seq_len}
          eval_fraction: {eval_fraction}
          eval_samples: 8
          eval_corpora: {eval_corpora}
        train: {{scheduler: wsd, decay_fraction: 0.5, warmup_steps: 0, {steps}per_device_batch_size: {batch}}}
        """) + textwrap.dedent(extra)
    path = folder / name
    path.write_text(text)
    return path


def load(path: Path, overrides=()):
    from tune.recipe import load_recipe

    return load_recipe(path, list(overrides)).recipe
