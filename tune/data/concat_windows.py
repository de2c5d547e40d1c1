"""`data.packing: concat`: LLM-jp's own SFT packing, samples joined into one stream cut into fixed windows.

What LLM-jp's ft-llm-2026 does (tuning/sft_dataset.py, ``SFTModelDataset._process_examples.chunk_stream``
and ``collate_fn``), reproduced here on the prepared samples, in their training order:

    stream   every sample's token ids and loss mask, one after the other
    windows  consecutive, non-overlapping slices of ``max_seq_len + 1`` tokens; a sample longer than
             what is left of a window continues in the next one; the last, partial window is dropped
    kept     a window with at least one supervised token (``set(mask) != {0}``)
    trained  inputs = window[:-1], targets = window[1:], loss where the target's mask is 1, positions
             0 .. max_seq_len - 1 in every window (not reset per sample), plain causal attention: a
             sample sees the end of the sample before it

Worked example, ``max_seq_len = 4`` (windows of 5), samples A = a1 a2 a3 (a2 a3 supervised) and
B = b1 b2 b3 b4 (b3 b4 supervised)::

    stream   a1 a2 a3 b1 b2 | b3 b4          labels  - a2 a3 - - | b3 b4
    window   a1 a2 a3 b1 b2                  kept (a2, a3 supervised); b3 b4 (2 of 5) dropped

A window is stored as ``input_ids`` = its ``max_seq_len + 1`` tokens and ``labels`` = the token where
supervised, -100 elsewhere; the trainer's causal shift then scores exactly targets window[1:] (the
first label is never a target), and the last input position predicts nothing: the loss is LLM-jp's,
for one extra position of compute per window.

Memory stays flat: samples are read batch by batch and at most one window plus one batch is held.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from tune.data.arrow_files import BatchWriter
from tune.data.chat_masks import IGNORE_INDEX
from tune.data.conversation_samples import CONVERSATION_SAMPLES


@dataclass(frozen=True)
class Windows:
    """What cutting the stream left: windows written, windows dropped for having no supervised token,
    and tokens of the last, partial window (dropped)."""

    kept: int
    unsupervised: int
    tail_tokens: int


class _Stream:
    """Token ids, labels and the dataset of each token, appended in order and cut from the front."""

    def __init__(self) -> None:
        self.ids = np.empty(0, dtype=np.int32)
        self.labels = np.empty(0, dtype=np.int32)
        self.datasets = np.empty(0, dtype=np.int64)

    def extend(self, ids: np.ndarray, labels: np.ndarray, datasets: np.ndarray) -> None:
        self.ids = np.concatenate([self.ids, ids])
        self.labels = np.concatenate([self.labels, labels])
        self.datasets = np.concatenate([self.datasets, datasets])

    def take(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        taken = self.ids[:count], self.labels[:count], self.datasets[:count]
        self.ids, self.labels, self.datasets = self.ids[count:], self.labels[count:], self.datasets[count:]
        return taken


def write_windows(samples_path: Path, windows_path: Path, max_seq_len: int) -> Windows:
    """Cut the samples of the Arrow stream ``samples_path`` (input_ids, labels, dataset, in training
    order) into windows of ``max_seq_len + 1`` tokens written to ``windows_path`` (same columns; a
    window's `dataset` is that of its first token)."""
    size = max_seq_len + 1
    schema = CONVERSATION_SAMPLES.schema
    writer = BatchWriter(windows_path, schema, stream=True)
    stream, kept, unsupervised = _Stream(), 0, 0
    try:
        with pa.OSFile(str(samples_path), "rb") as source:
            for batch in pa.ipc.open_stream(source):
                ids = batch.column("input_ids")
                lengths = np.diff(ids.offsets.to_numpy())
                stream.extend(ids.flatten().to_numpy(), batch.column("labels").flatten().to_numpy(),
                              np.repeat(batch.column("dataset").to_numpy(), lengths))
                while len(stream.ids) >= size:
                    window_ids, window_labels, window_datasets = stream.take(size)
                    if (window_labels == IGNORE_INDEX).all():
                        unsupervised += 1
                        continue
                    writer.append((window_ids.tolist(), window_labels.tolist(), int(window_datasets[0])))
                    kept += 1
    finally:
        writer.close()
    return Windows(kept, unsupervised, len(stream.ids))
