"""The windows of pre-tokenized corpora as the Hugging Face Trainer reads them: a map-style torch Dataset.

Item ``j`` of a ``CorpusWindows`` is sample ``start + j`` of a Megatron dataset (a BlendedDataset for
training, a GPTDataset for a held-out slice), as ``{"input_ids": LongTensor[max_seq_len + 1]}``: the
window of Megatron's (tokens, labels) pair, tokens = input_ids[:-1] and labels = input_ids[1:]
(tune.training.corpus_trainer shifts them back apart). Consecutive windows of a document stream share
one token, as Megatron's do.

``starting_at(k)`` is the same windows from the ``k``-th on, in O(1): a resumed run that consumed k
samples reads ``train.starting_at(k)``, nothing is replayed. The length is fixed at construction
(the planned samples for training; at most `data.eval_samples` held-out windows for evaluation), so
the Megatron dataset's surplus samples are never read.
"""

from __future__ import annotations

from typing import Any

import torch


class CorpusWindows(torch.utils.data.Dataset):
    """``length`` windows of ``source`` (a Megatron dataset) from its sample ``start`` (module docstring)."""

    def __init__(self, source: Any, start: int, length: int) -> None:
        if start < 0 or length < 0:
            raise ValueError(f"start {start} and length {length} must not be negative")
        self.source = source
        self.start = start
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"window {index} of {self.length}")
        sample = self.source[self.start + index]
        return {"input_ids": torch.cat((sample["tokens"], sample["labels"][-1:]))}

    def dataset_id(self, index: int) -> int:
        """Which corpus of the blend window ``index`` comes from (its position in `data.corpora`), from
        the BlendedDataset's ``dataset_index``; 0 for a single corpus's own windows."""
        if not 0 <= index < self.length:
            raise IndexError(f"window {index} of {self.length}")
        blend_index = getattr(self.source, "dataset_index", None)
        return 0 if blend_index is None else int(blend_index[self.start + index])

    def starting_at(self, sample: int) -> CorpusWindows:
        """The windows from ``sample`` on (item j is ``self[sample + j]``); empty past the end."""
        if sample < 0:
            raise ValueError(f"sample {sample} must not be negative")
        sample = min(sample, self.length)
        return CorpusWindows(self.source, self.start + sample, self.length - sample)
