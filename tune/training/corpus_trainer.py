"""What a trainer needs to read pre-tokenized corpus windows (method cpt): their order, their batches, their perplexity.

    CorpusOrderMixin     the training windows are read in the order tune.data.corpus_pipeline gives them
                         (Megatron's blended order), never reshuffled: transformers' Trainer would draw a
                         random permutation. With accelerate's batch sharding (process p takes the p-th
                         micro batch of each group of processes), optimizer step k consumes the global
                         samples [k x G, (k + 1) x G) on any number of processes (G: the global batch),
                         so a resumed run starts its data at sample k x G (``train.starting_at``) instead
                         of replaying k steps of batches (`ignore_data_skip`, set by tune.training.arguments)
    PerplexityLogMixin   every logged eval loss ``eval_<name>_loss`` gets its ``eval_<name>_perplexity``
                         (exp of the mean token loss) beside it, in the logs, metrics.jsonl and trackers
    collate_windows      stacks windows of ``max_seq_len + 1`` tokens into ``input_ids`` and ``labels``:
                         the model predicts tokens 1..L from tokens 0..L-1, exactly Megatron's
                         (tokens[:-1], labels[1:]) pair, at the cost of one extra input position
"""

from __future__ import annotations

import math

import torch


def collate_windows(windows: list[dict]) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``labels`` (the same ids: transformers shifts the labels) of equal-length windows."""
    ids = torch.stack([torch.as_tensor(window["input_ids"], dtype=torch.long) for window in windows])
    return {"input_ids": ids, "labels": ids.clone()}


def perplexity(loss: float) -> float:
    """exp(``loss``), inf where it overflows, NaN for NaN (never a made-up number)."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


class CorpusOrderMixin:
    """A Trainer mixin: training windows in the dataset's own order (module docstring)."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return torch.utils.data.SequentialSampler(dataset)


class PerplexityLogMixin:
    """A Trainer mixin: each eval loss that is logged is logged with its perplexity."""

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        extra = {key.removesuffix("_loss") + "_perplexity": perplexity(value) for key, value in logs.items()
                 if key.startswith("eval") and key.endswith("_loss") and isinstance(value, (int, float))}
        super().log({**logs, **extra}, *args, **kwargs)
