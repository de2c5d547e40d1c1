"""The blend of a `cpt` recipe's corpora and the size of its run, from token counts alone (no torch).

Weights, as LLM-jp passes them to Megatron (`--data-path W1 PREFIX1 W2 PREFIX2 ...` with W = the
corpus's tokens x its repeat factor; Megatron normalizes them, megatron.core.datasets.utils.normalize):

    weight_i = tokens_i x repeat_i / sum_j tokens_j x repeat_j      (repeat default 1)
    weight_i = share_i                                              (when the corpora give `share`)

Planned size (what Megatron's `--train-samples` is for LLM-jp: the sample order depends on it):

    global batch G   = launch.nodes x launch.processes_per_node x train.per_device_batch_size
                       x train.grad_accumulation (derived on the Recipe)
    planned steps    = train.max_steps when set, else
                       floor(train.epochs x sum_i tokens_i x repeat_i / data.max_seq_len / G), at least 1
    planned samples  = planned steps x G

With `share`s the corpora's sizes say nothing about the run's length: `train.max_steps` is required.

Names: each corpus is reported (and evaluated: `eval_<name>_loss`) under its `name`, else the last
component of its prefix; corpora whose last components collide get as many parent components as make
them unique (``corpus_names``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import PurePath

from tune.config.schema import CorpusDataSection, CorpusEntry, Recipe
from tune.errors import UserError


def global_batch(recipe: Recipe) -> int:
    """Sequences per optimizer step of ``recipe``'s whole job (module docstring)."""
    launch, train = recipe.launch, recipe.train
    return launch.nodes * launch.processes_per_node * train.per_device_batch_size * train.grad_accumulation


def uses_shares(recipe: Recipe) -> bool:
    return any(entry.share is not None for entry in recipe.data.corpora)


def blend_weights(recipe: Recipe, token_counts: Sequence[int]) -> list[float]:
    """The normalized blend weight of every `data.corpora` entry (module docstring). Refuses (UserError)
    a corpus without tokens, which Megatron cannot draw from."""
    corpora = recipe.data.corpora
    for number, tokens in enumerate(token_counts):
        if tokens <= 0:
            raise UserError(f"data.corpora.{number}.prefix: {corpora[number].prefix} holds no tokens; "
                            "drop it or tokenize documents into it")
    if uses_shares(recipe):
        raw = [entry.share for entry in corpora]
    else:
        raw = [tokens * repeat_of(entry) for entry, tokens in zip(corpora, token_counts)]
    total = float(sum(raw))
    return [value / total for value in raw]


def repeat_of(entry: CorpusEntry) -> float:
    """The corpus's repeat factor: its `repeat`, 1 when unset."""
    return 1.0 if entry.repeat is None else float(entry.repeat)


def planned_steps(recipe: Recipe, token_counts: Sequence[int]) -> int:
    """Optimizer steps of the run (module docstring). Refuses (UserError) `train.epochs` with corpus shares."""
    if recipe.train.max_steps:
        return recipe.train.max_steps
    if uses_shares(recipe):
        raise UserError("data.corpora: with `share`s the corpora's sizes do not say how long to train: "
                        "set train.max_steps (train.epochs counts passes over tokens x repeat)")
    blended = sum(tokens * repeat_of(entry) for entry, tokens in zip(recipe.data.corpora, token_counts))
    steps = math.floor(recipe.train.epochs * blended / recipe.data.max_seq_len / global_batch(recipe))
    return max(1, steps)


def planned_samples(recipe: Recipe, token_counts: Sequence[int]) -> int:
    """Training windows the run consumes: planned steps x global batch."""
    return planned_steps(recipe, token_counts) * global_batch(recipe)


def corpus_entries(data: CorpusDataSection):
    """``(key, entry)`` of every training corpus, then every eval-only corpus (``data.corpora.0``, ...)."""
    yield from ((f"data.corpora.{n}", entry) for n, entry in enumerate(data.corpora))
    yield from ((f"data.eval_corpora.{n}", entry) for n, entry in enumerate(data.eval_corpora))


def corpus_names(entries: Sequence[CorpusEntry]) -> list[str]:
    """The report and metric name of each entry (module docstring), in order; explicit names as written."""
    parts = [PurePath(entry.prefix).parts for entry in entries]
    depth = [1] * len(entries)
    for _ in range(max((len(p) for p in parts), default=1)):
        names = [entry.name or "/".join(p[-d:]) for entry, p, d in zip(entries, parts, depth)]
        clashes = {name for name in names if names.count(name) > 1}
        grown = False
        for index, (entry, name) in enumerate(zip(entries, names)):
            if name in clashes and entry.name is None and depth[index] < len(parts[index]):
                depth[index] += 1
                grown = True
        if not grown:
            return names
    return [entry.name or "/".join(p[-d:]) for entry, p, d in zip(entries, parts, depth)]
