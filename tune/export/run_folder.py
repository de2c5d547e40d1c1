"""Read a finished run folder and find the base checkpoint its adapter was trained on.

A finished run (tune.methods.run) holds ``recipe.yaml`` (the fully resolved recipe),
``manifest.json`` (written last, when training ended) and ``final/`` (a peft LoRA adapter with
``adapter_config.json``, or a full model with ``config.json``, plus the tokenizer).

The recorded recipe is validated against the schema only: it already passed every file-system
check when the run started, and a merge must not fail because a training data file has moved
since. Pure python at import time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tune.config.schema import Recipe
from tune.errors import UserError


@dataclass(frozen=True)
class FinishedRun:
    """A run folder whose training finished: its recipe, manifest and ``final/`` folder."""

    folder: Path
    recipe: Recipe
    manifest: dict
    final: Path

    @property
    def is_adapter(self) -> bool:
        """True when ``final/`` holds a LoRA adapter (lora or qlora), False for a full model."""
        return (self.final / "adapter_config.json").is_file()

    @property
    def adapter_config(self) -> dict:
        return json.loads((self.final / "adapter_config.json").read_text())


def read_run(folder: str | Path) -> FinishedRun:
    """The finished run in ``folder``.

    Refuses (UserError): a folder that does not exist, one without ``recipe.yaml`` (not a run
    folder), a run without ``manifest.json`` or ``final/`` (training did not finish: says how to
    resume it), a ``final/`` holding neither an adapter nor a model, and a ``recipe.yaml`` that
    does not validate.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder; give the output.dir of a finished `tune run`")
    if not (folder / "recipe.yaml").is_file():
        raise UserError(f"{folder} is not a tune run folder (no recipe.yaml); give the output.dir of a finished `tune run`")
    final = folder / "final"
    if not (folder / "manifest.json").is_file() or not final.is_dir():
        raise UserError(
            f"{folder}: the run has not finished (no {'final/' if not final.is_dir() else 'manifest.json'}); "
            f"let it finish, or resume it with `tune run {folder / 'recipe.yaml'}`"
        )
    if not (final / "adapter_config.json").is_file() and not (final / "config.json").is_file():
        raise UserError(f"{final} holds neither a LoRA adapter (adapter_config.json) nor a model (config.json)")
    return FinishedRun(folder, recorded_recipe(folder / "recipe.yaml"), json.loads((folder / "manifest.json").read_text()), final)


def recorded_recipe(path: Path) -> Recipe:
    """The Recipe a run recorded in ``path`` (schema validation only); UserError when it does not validate."""
    import yaml
    from pydantic import ValidationError

    try:
        return Recipe.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, ValidationError) as err:
        raise UserError(f"{path}: not a resolved tune recipe ({str(err).splitlines()[0]})") from None


def locate_base(run: FinishedRun, base: str | None = None) -> Path:
    """The local folder of the base checkpoint ``run``'s adapter was trained on.

    Tried in order: ``base`` (the user's ``--base DIR``), the adapter's ``base_model_name_or_path``
    when it is a local folder with config.json, then the recipe's ``model`` section resolved as
    training did (tiny twins rebuilt, the hub cache, a download when the hub answers). Refuses
    (UserError) a ``base`` without config.json, and a base found nowhere, saying to pass ``--base``.
    """
    if base is not None:
        if not (Path(base) / "config.json").is_file():
            raise UserError(f"--base {base}: no config.json there; point it at the base checkpoint folder")
        return Path(base)
    recorded = run.adapter_config.get("base_model_name_or_path") if run.is_adapter else None
    if recorded and (Path(recorded) / "config.json").is_file():
        return Path(recorded)
    from tune.models.checkpoints import locate_checkpoint

    try:
        return locate_checkpoint(run.recipe.model).folder
    except UserError as err:
        raise UserError(
            f"the base model of {run.folder} ({recorded or run.recipe.model.name}) cannot be found: {err}. "
            "Pass --base DIR, a local copy of that checkpoint (a folder with config.json and the weights)"
        ) from None


def saved_dtype(folder: Path) -> str | None:
    """The dtype a checkpoint folder's config.json says its weights are stored in, or None."""
    config = json.loads((Path(folder) / "config.json").read_text())
    value = config.get("dtype") or config.get("torch_dtype")
    return value if value in ("float32", "bfloat16", "float16") else None
