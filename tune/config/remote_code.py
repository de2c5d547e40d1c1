"""`model.trust_remote_code: true` needs the person, not just the file.

With it, loading the checkpoint runs the Python files of the checkpoint's repository on this
machine. A recipe may ask for it from a `base:` several files away, or a copied recipe may carry
it unnoticed, so `tune run` also needs the person at the keyboard to say yes: the flag
``--trust-remote-code`` on the command line, or ``TUNE_TRUST_REMOTE_CODE=1`` in the environment
(for batch jobs). Without either, ``remote_code_problem`` names the file, line and column that
set the key (a base file's, through the `base:` chain, or the override's text), and `tune run`
exits 2 before anything loads. `tune validate` says the same in its plan (tune.plan).

Why, with the cases each check comes from: docs/validation.md
"""

from __future__ import annotations

import os

from tune.config.loaded_recipe import LoadedRecipe
from tune.config.positions import Position, PositionMap
from tune.config.problems import Problem
from tune.config.schema import Recipe

KEY = "model.trust_remote_code"
ENV = "TUNE_TRUST_REMOTE_CODE"
CONSENT = f"`--trust-remote-code` on the command line (or {ENV}=1) once you have read that code, or {KEY}: false"


def consent_given(flag: bool) -> bool:
    """Whether the person allowed remote code: ``flag`` (`--trust-remote-code`) or ``TUNE_TRUST_REMOTE_CODE=1``."""
    return flag or os.environ.get(ENV, "").strip() == "1"


def where_set(positions: PositionMap | None) -> Position | None:
    """Where `model.trust_remote_code` was written (None when no file or override wrote it)."""
    if positions is None or KEY not in positions.values:
        return None
    return positions.value(KEY)


def remote_code_problem(loaded: LoadedRecipe, consent: bool) -> Problem | None:
    """The refusal of a recipe that asks for remote code without the person's consent, else None.

    The problem sits where the key was written; when that is a base file, it says which recipe
    inherits it."""
    if not loaded.recipe.model.trust_remote_code or consent:
        return None
    position = where_set(loaded.positions) or Position(str(loaded.source_path))
    inherited = ""
    if position.file is not None and position.file != loaded.source_path:
        inherited = f" (inherited through `base:` by {loaded.source_path.name})"
    what = (f"true{inherited}: loading {loaded.recipe.model.name} would run Python code from its "
            "repository on this machine, and the command line did not allow it")
    return Problem(position, KEY, what, CONSENT)


def remote_code_plan(recipe: Recipe, positions: PositionMap | None = None) -> list[str]:
    """The plan line for a recipe that asks for remote code, naming where (none otherwise)."""
    if not recipe.model.trust_remote_code:
        return []
    position = where_set(positions)
    at = f" (set at {position.label()})" if position is not None else ""
    return [f"remote code: {KEY} is true{at}: loading {recipe.model.name} runs the checkpoint "
            f"repository's Python code; `tune run` needs --trust-remote-code (or {ENV}=1)"]
