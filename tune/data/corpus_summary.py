"""What `tune validate` says about a `cpt` recipe's corpora, from their `.idx` headers alone (no torch).

When every corpus's `.bin` and `.idx` are on this machine: each corpus's documents, tokens, dtype,
repeat (or share) and target share (its normalized blend weight, tune.data.corpus_blend), then the
planned steps and tokens. When some are not (published recipes name corpora on a cluster): one line
saying which, deferred to `tune run`, which reads them where it trains. The realized shares and the
held-out windows need Megatron's indices: `tune data preview` builds them.
"""

from __future__ import annotations

from pathlib import Path

from tune.config.schema import CorpusDataSection, Recipe
from tune.data.corpus_blend import (blend_weights, corpus_entries, corpus_names, global_batch, planned_steps,
                                    repeat_of)
from tune.data.corpus_index import read_index
from tune.errors import UserError


def corpus_plan_lines(recipe: Recipe) -> list[str]:
    """What `tune validate` prints about ``recipe``'s corpora (module docstring); [] without corpora."""
    data = recipe.data
    if not isinstance(data, CorpusDataSection):
        return []
    missing = [f"{key}.prefix {entry.prefix}" for key, entry in corpus_entries(data)
               if not (Path(entry.prefix + ".idx").exists() and Path(entry.prefix + ".bin").exists())]
    if missing:
        return [f"corpora deferred to `tune run` (not on this machine, so sizes and shares are not known here): "
                + "; ".join(missing)]
    try:
        indices = [read_index(entry.prefix, key) for key, entry in corpus_entries(data)]
    except UserError as error:  # tune.recipe.corpus_checks has refused it already when loading
        return [f"corpora: {error}"]
    trained = indices[:len(data.corpora)]
    tokens = [index.tokens for index in trained]
    names = corpus_names([entry for _, entry in corpus_entries(data)])
    try:
        weights = blend_weights(recipe, tokens)
        steps = planned_steps(recipe, tokens)
    except UserError as error:
        return [f"corpora: {error}"]
    lines = []
    for name, entry, index, weight in zip(names, data.corpora, trained, weights):
        how = f"share {entry.share:g}" if entry.share is not None else f"repeat {repeat_of(entry):g}"
        lines.append(f"corpus {name}: {index.documents:,} documents, {index.tokens:,} tokens ({index.dtype.name}), "
                     f"{how}, target share {weight:.2%}")
    for name, index in zip(names[len(data.corpora):], indices[len(data.corpora):]):
        lines.append(f"corpus {name} (eval only): {index.documents:,} documents, {index.tokens:,} tokens")
    batch = global_batch(recipe)
    source = "train.max_steps" if recipe.train.max_steps else f"{recipe.train.epochs:g} epoch(s) of tokens x repeat"
    lines.append(f"corpora: {steps:,} steps ({source}) x global batch {batch:,} x {data.max_seq_len:,} tokens = "
                 f"{steps * batch * data.max_seq_len:,} tokens; realized shares and held-out windows: "
                 f"`tune data preview` (builds Megatron's indices)")
    return lines
