"""A Megatron indexed dataset's `.idx` header, read with numpy only (no torch, no megatron import).

`tune validate`, `tune plan` and the blend weights need each corpus's size before anything heavy
loads, so this module reads the index the way Megatron-Core's ``_IndexReader``
(megatron/core/datasets/indexed_dataset.py) lays it out, little-endian:

    9 bytes   magic ``MMIDIDX\\x00\\x00``
    u64       version, 1
    u8        dtype code of the tokens in `.bin` (1 uint8, 2 int8, 3 int16, 4 int32, 5 int64,
              6 float64, 7 float32, 8 uint16: Megatron's ``DType``)
    u64       sequence count S
    u64       document count D + 1 (document boundaries, as sequence indices, first 0, last S)
    int32[S]  sequence lengths, in tokens
    int64[S]  byte offsets of the sequences in `.bin`
    int64[D+1] document boundaries

`.bin` holds the tokens back to back, so the corpus's token count is its size / the dtype's size;
that the last sequence ends exactly where `.bin` ends is checked (a cut copy fails it). GPTDataset
treats every *sequence* as a document (``numel_low_level_dataset``); `tune data tokenize` and
LLM-jp's preprocessing write one sequence per document, so the counts agree for those corpora.

Refuses with a UserError naming the recipe key (``data.corpora.N.prefix``) and the path: a missing
`.idx` or `.bin`, a file without the magic or of another version (not a Megatron index), an `.idx`
shorter than its header says, a `.bin` whose size disagrees with the index.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tune.errors import UserError

if TYPE_CHECKING:
    from tune.config.schema import Recipe

MAGIC = b"MMIDIDX\x00\x00"
HEADER_BYTES = 9 + 8 + 1 + 8 + 8  # magic, version, dtype code, sequence count, document count + 1
# Megatron's DType codes (megatron.core.datasets.indexed_dataset.DType)
DTYPES: dict[int, np.dtype] = {1: np.dtype(np.uint8), 2: np.dtype(np.int8), 3: np.dtype(np.int16),
                               4: np.dtype(np.int32), 5: np.dtype(np.int64), 6: np.dtype(np.float64),
                               7: np.dtype(np.float32), 8: np.dtype(np.uint16)}


@dataclass(frozen=True)
class CorpusIndex:
    """What one corpus's `.idx` says: ``documents`` (D), ``sequences`` (S), ``tokens`` (in `.bin`),
    the token ``dtype``, and where the files are (``prefix``)."""

    prefix: str
    dtype: np.dtype
    sequences: int
    documents: int
    tokens: int

    @property
    def idx_path(self) -> Path:
        return Path(self.prefix + ".idx")

    @property
    def bin_path(self) -> Path:
        return Path(self.prefix + ".bin")

    def max_token_id(self) -> int:
        """The largest id the dtype can hold (integer dtypes; floats are refused by ``check_vocab``)."""
        return int(np.iinfo(self.dtype).max) if self.dtype.kind in "iu" else -1

    def sequence_lengths(self) -> np.ndarray:
        """The S sequence lengths (int32), memory-mapped: reading them costs 4 bytes per sequence."""
        return np.memmap(self.idx_path, dtype=np.int32, mode="r", offset=HEADER_BYTES, shape=(self.sequences,))

    def tokens_in(self, begin: int, end: int) -> int:
        """Tokens of sequences ``[begin, end)``: what a split range of GPTDataset covers."""
        if end <= begin:
            return 0
        return int(self.sequence_lengths()[begin:end].sum(dtype=np.int64))

    def check_vocab(self, vocab_size: int, key: str) -> None:
        """Refuse (UserError naming ``key``) token ids stored in a dtype that cannot hold ``vocab_size`` ids."""
        if self.max_token_id() < vocab_size - 1:
            raise UserError(f"{key}: {self.idx_path} stores token ids as {self.dtype.name}, which holds ids up to "
                            f"{self.max_token_id():,}; the tokenizer has {vocab_size:,} ids, so this corpus was "
                            "tokenized for another vocabulary: tokenize it again with this model's tokenizer "
                            "(`tune data tokenize`)")


def read_index(prefix: str | Path, key: str) -> CorpusIndex:
    """The header of ``prefix``.idx checked against ``prefix``.bin (module docstring). ``key`` is the
    recipe key that named the prefix, for the messages (``data.corpora.0.prefix``)."""
    prefix = str(prefix)
    idx, binary = Path(prefix + ".idx"), Path(prefix + ".bin")
    for path in (idx, binary):
        if not path.is_file():
            raise UserError(f"{key}: no such corpus file: {path} (a corpus is a Megatron indexed dataset, "
                            f"PREFIX.bin + PREFIX.idx, as `tune data tokenize --out PREFIX` writes it); correct the "
                            f"prefix, or set data.corpus_root to the folder relative prefixes are read from")
    size = idx.stat().st_size
    with open(idx, "rb") as handle:
        head = handle.read(HEADER_BYTES)
    if len(head) < HEADER_BYTES or head[:9] != MAGIC:
        raise UserError(f"{key}: {idx} is not a Megatron index (.idx): it does not start with {MAGIC!r}")
    version, code, sequences, boundaries = struct.unpack("<QBQQ", head[9:])
    if version != 1 or code not in DTYPES:
        raise UserError(f"{key}: {idx} is a Megatron index of an unknown kind (version {version}, dtype code "
                        f"{code}); tune reads version 1 with dtype codes 1-8")
    expected = HEADER_BYTES + sequences * (4 + 8) + boundaries * 8
    if boundaries < 1 or size < expected:
        raise UserError(f"{key}: {idx} is cut short: {size:,} bytes, its header announces {sequences:,} sequences "
                        f"and {max(boundaries - 1, 0):,} documents ({expected:,} bytes); copy or tokenize it again")
    dtype = DTYPES[code]
    bin_size = binary.stat().st_size
    if sequences:
        last_length = struct.unpack("<i", _read_at(idx, HEADER_BYTES + (sequences - 1) * 4, 4))[0]
        last_pointer = struct.unpack("<q", _read_at(idx, HEADER_BYTES + sequences * 4 + (sequences - 1) * 8, 8))[0]
        end = last_pointer + last_length * dtype.itemsize
    else:
        end = 0
    if end != bin_size:
        raise UserError(f"{key}: {binary} holds {bin_size:,} bytes and its index {idx} says {end:,}: the pair does "
                        "not belong together or one is cut short; copy or tokenize it again")
    return CorpusIndex(prefix, dtype, int(sequences), int(boundaries) - 1, bin_size // dtype.itemsize)


def _read_at(path: Path, offset: int, count: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(count)


def corpus_indices(recipe: Recipe) -> list[CorpusIndex]:
    """The index of every `data.corpora` entry of ``recipe``, in order (UserError as ``read_index``)."""
    return [read_index(entry.prefix, f"data.corpora.{number}.prefix")
            for number, entry in enumerate(recipe.data.corpora)]


def corpus_token_counts(recipe: Recipe) -> list[int]:
    """The token count of every `data.corpora` entry of ``recipe``, in order, from their `.idx` (no torch)."""
    return [index.tokens for index in corpus_indices(recipe)]
