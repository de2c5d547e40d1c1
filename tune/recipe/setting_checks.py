"""Settings of one section that another section makes pointless: checked on the validated Recipe.

- ``train.eval_steps`` needs held-out rows: with `data.eval_fraction: 0` or `data.eval_max_rows:
  0` nothing is held out and the run would never evaluate, silently. (Whether a small dataset
  holds out at least one row under a non-zero fraction depends on its row count, known only when
  the data is prepared.) A cpt recipe evaluates the held-out documents of its corpora
  (`data.eval_fraction`) and its `data.eval_corpora`: with neither, `eval_steps` is refused alike.
"""

from __future__ import annotations

from tune.config.positions import PositionMap
from tune.config.problems import Problem
from tune.config.schema import Recipe


def setting_problems(recipe: Recipe, positions: PositionMap) -> list[Problem]:
    """The problems of ``recipe`` listed in the module docstring, each at the key to change."""
    problems = []
    data = recipe.data
    if hasattr(data, "corpora"):  # cpt: held-out documents of each corpus, or corpora read only for evaluation
        if recipe.train.eval_steps is not None and data.eval_fraction == 0 and not data.eval_corpora:
            problems.append(Problem(positions.value("train.eval_steps"), "train.eval_steps",
                                    "evaluates the held-out documents, and data.eval_fraction is 0 with no "
                                    "data.eval_corpora: nothing is held out, so it would never evaluate",
                                    "no `eval_steps`, or data.eval_fraction > 0, or data.eval_corpora"))
    elif recipe.train.eval_steps is not None and (data.eval_fraction == 0 or data.eval_max_rows == 0):
        empty = "data.eval_fraction is 0" if data.eval_fraction == 0 else "data.eval_max_rows is 0"
        problems.append(Problem(positions.value("train.eval_steps"), "train.eval_steps",
                                f"evaluates the held-out rows, and {empty}: nothing is held out, so it would never evaluate",
                                "no `eval_steps`, or data.eval_fraction > 0 and data.eval_max_rows > 0"))
    return problems
