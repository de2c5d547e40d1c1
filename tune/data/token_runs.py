"""Samples as runs of int32 token ids in one flat file, read back by position without holding the file.

Step 3 of the pipeline writes each sample's columns (input_ids then labels, or prompt / chosen /
rejected ids) back to back; the file's index (where each sample starts, each column's length) stays
in memory, 8 bytes per column per sample. Step 4 reads samples in training order, a random order:
``read`` takes each one with ``os.pread``, so only the bytes asked for are read and nothing of the
file stays in this process's memory (a memory map would keep every page it touched resident, and
the kernel maps 64 KiB around each touched page).
"""

from __future__ import annotations

import os
from array import array
from pathlib import Path

import numpy as np
import pyarrow as pa

TOKEN = np.dtype("<i4")


class TokenRunsWriter:
    """Appends samples of ``columns`` token lists each to ``path``; ``index()`` says where they lie."""

    def __init__(self, path: Path, columns: int) -> None:
        self.path, self.columns = Path(path), columns
        self._file = open(path, "wb")
        self._lengths = array("q")
        self._written = 0

    def append(self, values: tuple[list[int], ...]) -> None:
        for column in values:
            data = np.asarray(column, dtype=TOKEN)
            self._file.write(data.tobytes())
            self._lengths.append(len(data))

    def close(self) -> TokenRuns:
        """Close the file; the runs it holds."""
        self._file.close()
        lengths = np.frombuffer(self._lengths, dtype=np.int64).reshape(-1, self.columns).copy()
        starts = np.concatenate([[0], np.cumsum(lengths.sum(axis=1))])[:-1].astype(np.int64)
        return TokenRuns(self.path, starts, lengths)


class TokenRuns:
    """The samples of a runs file: sample i starts at token ``starts[i]``, its columns are ``lengths[i]`` long."""

    def __init__(self, path: Path, starts: np.ndarray, lengths: np.ndarray) -> None:
        self.path, self.starts, self.lengths = Path(path), starts, lengths

    def read(self, samples: np.ndarray, types: list[pa.DataType]) -> list[pa.Array]:
        """Samples ``samples`` (in that order) as one list array per column, of ``types``."""
        columns = self.lengths.shape[1]
        pieces: list[list[np.ndarray]] = [[] for _ in range(columns)]
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for sample in samples:
                lengths = self.lengths[sample]
                data = np.frombuffer(os.pread(fd, int(lengths.sum()) * TOKEN.itemsize, int(self.starts[sample]) * TOKEN.itemsize),
                                     dtype=TOKEN)
                cut = np.cumsum(lengths)[:-1]
                for column, part in enumerate(np.split(data, cut)):
                    pieces[column].append(part)
        finally:
            os.close(fd)
        arrays = []
        for parts, list_type in zip(pieces, types):
            offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts], dtype=np.int64)]).astype(np.int32)
            values = np.concatenate(parts) if parts else np.empty(0, dtype=TOKEN)
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=list_type.value_type)))
        return arrays
