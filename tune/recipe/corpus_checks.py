"""A `cpt` recipe's corpora, checked at load time where they can be, and what `tune validate` says of them.

No torch: the `.idx` headers are read with numpy (tune.data.corpus_index). Published recipes name
corpora on a cluster, so a corpus that is not on this machine is not a problem here: `tune run` reads
it where it trains, and tune.data.corpus_summary lists it as deferred.

``corpus_problems`` (run by tune.recipe.load after the schema) reports, each at its key:
    - a corpus whose `.idx` is here but is not a readable Megatron index, or disagrees with its `.bin`
    - two corpora (training or eval-only) with the same `name` (reports and `eval_<name>_loss` need one each)
    - an eval-only corpus that is also a training corpus (its perplexity would not be held out)

What `tune validate` prints about the corpora (sizes, shares, steps, or that they are deferred) is
tune.data.corpus_summary's.
"""

from __future__ import annotations

from pathlib import Path

from tune.config.positions import PositionMap
from tune.config.problems import Problem
from tune.config.schema import CorpusDataSection, Recipe
from tune.data.corpus_blend import corpus_entries, corpus_names
from tune.data.corpus_index import read_index
from tune.errors import UserError


def corpus_problems(recipe: Recipe, positions: PositionMap) -> list[Problem]:
    """The problems of the module docstring, in recipe order (none for a recipe without corpora)."""
    data = recipe.data
    if not isinstance(data, CorpusDataSection):
        return []
    problems = []
    for key, entry in corpus_entries(data):
        if not Path(entry.prefix + ".idx").exists():
            continue  # deferred: `tune run` reads it where it trains
        try:
            read_index(entry.prefix, f"{key}.prefix")
        except UserError as error:
            what = str(error).removeprefix(f"{key}.prefix: ")
            problems.append(Problem(positions.value(f"{key}.prefix"), f"{key}.prefix", what))
    problems += _name_problems(data, positions)
    trained = {Path(entry.prefix) for entry in data.corpora}
    for number, entry in enumerate(data.eval_corpora):
        if Path(entry.prefix) in trained:
            key = f"data.eval_corpora.{number}.prefix"
            problems.append(Problem(positions.value(key), key, f"{entry.prefix} is also a training corpus (data.corpora)",
                                    "a corpus not trained on: its held-out perplexity would measure memorized text; "
                                    "the training corpora's own held-out documents are evaluated already "
                                    "(data.eval_fraction)"))
    return problems


def _name_problems(data: CorpusDataSection, positions: PositionMap) -> list[Problem]:
    keyed = list(corpus_entries(data))
    names = corpus_names([entry for _, entry in keyed])
    problems, seen = [], {}
    for (key, entry), name in zip(keyed, names):
        if name in seen:
            where = f"{key}.name" if entry.name is not None else f"{key}.prefix"
            problems.append(Problem(positions.value(where), where, f"corpus name {name!r} is taken by {seen[name]}",
                                    "a name of its own (`name:`): reports and eval metrics are named after it"))
        else:
            seen[name] = key
    return problems
