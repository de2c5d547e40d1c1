"""Encode batches of documents into Megatron documents, in this process or in a pool of processes.

A document becomes ``[bos] + ids + [eod]``: ``ids`` are the tokenizer's pieces of the text read as
plain text (special-token names such as ``<|eod|>`` inside a document are ordinary pieces, as
SentencePiece reads them, never their special ids), with nothing added by the tokenizer itself.
That is what Megatron-LM's ``tools/preprocess_data.py --tokenizer-type Llama2Tokenizer --append-eod``
writes: ``_Llama2Tokenizer.tokenize`` prepends ``bos_id`` and the encoder appends ``eod`` (= the
SentencePiece ``eos_id``); see tune.data.tokenize_corpus for the ids.

The pool workers rebuild the tokenizer from its ``tokenizers`` JSON (``backend_tokenizer.to_str()``),
so a worker encodes exactly as the parent; a pool of any size returns the batches in order.
"""

from __future__ import annotations

import os

import numpy as np

_WORKER: dict = {}


class DocumentEncoder:
    """Encodes lists of texts with a ``tokenizers.Tokenizer`` into one flat id array + lengths.

    Sets the tokenizer's ``encode_special_tokens`` (special-token names in text are text); the
    caller restores it on a tokenizer it shares (``restore``)."""

    def __init__(self, backend, bos_id: int, eod_id: int, dtype: str) -> None:
        self.backend, self.previous = backend, backend.encode_special_tokens
        backend.encode_special_tokens = True
        self.bos_id, self.eod_id, self.dtype = bos_id, eod_id, np.dtype(dtype)
        # ids only, no offsets: `encode_batch_fast` where this tokenizers version has it (0.23 does)
        self._batch = getattr(backend, "encode_batch_fast", backend.encode_batch)

    def restore(self) -> None:
        self.backend.encode_special_tokens = self.previous

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, lengths)``: every text as ``[bos] + pieces + [eod]``, concatenated in order, and
        the length of each (its pieces + 2)."""
        encodings = self._batch(texts, add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) + 2 for e in encodings), dtype=np.int64, count=len(encodings))
        flat = np.empty(int(lengths.sum()), dtype=self.dtype)
        start = 0
        for encoding, length in zip(encodings, lengths.tolist()):
            flat[start] = self.bos_id
            flat[start + 1:start + length - 1] = encoding.ids
            flat[start + length - 1] = self.eod_id
            start += length
        return flat, lengths


def init_worker(backend_json: str, bos_id: int, eod_id: int, dtype: str) -> None:
    """Pool initializer: one tokenizer per worker, single-threaded (the pool is the parallelism)."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer

    _WORKER["encoder"] = DocumentEncoder(Tokenizer.from_str(backend_json), bos_id, eod_id, dtype)


def encode_in_worker(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``DocumentEncoder.encode`` with the worker's tokenizer (``init_worker`` ran first)."""
    return _WORKER["encoder"].encode(texts)
