"""Find the checkpoint folder a recipe's `model` section names, without waiting on a dead network.

A recipe names a model as a preset (tiny twin or real LLM-jp-4), a Hugging Face id or a local
folder. This module turns that into a local folder holding config.json (building a tiny twin,
or using the hub cache, or downloading) and refuses at once, in one line, when a hub id cannot
be reached and no copy is cached: the hub client would otherwise retry for ~23 s and end in a
traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tune.config.schema import ModelSection
from tune.errors import UserError
from tune.hub import hub_unreachable
from tune.models.presets import Preset, get_preset


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint on local disk: ``folder`` holds config.json; ``source`` says where it came from."""

    folder: Path
    source: str  # the preset name, hub id or path the recipe named
    preset: Preset | None


def locate_checkpoint(model: ModelSection) -> Checkpoint:
    """Resolve ``model`` to a local checkpoint folder.

    Tiny twins are built (cached) locally. A real preset uses ``model.path`` when set, else its hub
    id for ``model.variant``. A hub id is taken from the local hub cache, else downloaded when the
    hub answers; raises UserError (naming `model.path` as the fix) when it does not.
    """
    preset = get_preset(model.name)
    if preset is not None and preset.is_tiny:
        from tune.models.tiny_twins import ensure_twin

        return Checkpoint(ensure_twin(preset), model.name, preset)
    if model.path:
        folder = Path(model.path)
        if not (folder / "config.json").is_file():
            raise UserError(f"model.path {folder}: no config.json there; point it at a checkpoint folder")
        return Checkpoint(folder, model.name, preset)
    if preset is None and Path(model.name).is_dir():
        folder = Path(model.name)
        if not (folder / "config.json").is_file():
            raise UserError(f"model.name {folder}: no config.json there; point it at a checkpoint folder")
        return Checkpoint(folder, model.name, None)
    hub_id = preset.hub_id(model.variant) if preset else model.name
    return Checkpoint(_hub_snapshot(hub_id, model.revision), hub_id, preset)


def _hub_snapshot(hub_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(hub_id, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        pass
    if hub_unreachable():
        raise UserError(
            f"model {hub_id}: the Hugging Face Hub cannot be reached from here and no copy is cached; "
            f"download it on a machine with access (`hf download {hub_id} --local-dir DIR`) and set model.path=DIR"
        )
    return Path(snapshot_download(hub_id, revision=revision))
