"""`model:` against the preset registry: the name, the variant and the MoE router defaults.

Run on the recipe tree before schema validation; values are fixed in place:

- ``model.name``: a preset, else an existing local directory (made absolute, read from the folder
  of the file that wrote it), else a hub id ``owner/name``; anything else is an unknown preset.
- ``model.variant``: only for presets, and only one the preset offers; filled with the preset's
  default when unset.
- ``model.path`` / ``model.revision``: refused with a tiny twin (built locally from its preset:
  nothing would read them) and with a local directory as ``model.name`` (it is the checkpoint; a
  second folder would leave unclear which one trains). A real preset's or a hub id's `path` is
  its local copy.
- ``model.router_aux_loss_coef`` / ``output_router_logits``: on an MoE model, written out when
  unset (the checkpoint's coefficient, 0.01 for LLM-jp-4 32B-A3B, and on: LLM-jp trained with it);
  on a dense model, refused.
- ``model.router_z_loss_coef`` above 0: refused on a dense model (no router), and on a `dpo` recipe
  (tune.training.router_losses adds the z-loss to SFT and cpt training only).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tune.config.paths import section
from tune.config.positions import PositionMap
from tune.config.problems import Problem, one_of
from tune.config.schema import ModelSection
from tune.config.schema_info import literal_choices
from tune.models.presets import PRESETS, architecture_of, close_preset_names, get_preset

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
VARIANTS = literal_choices(ModelSection.model_fields["variant"].annotation)


def resolve_model(tree: dict, positions: PositionMap) -> list[Problem]:
    """Resolve ``model.name``, ``model.variant`` and the router keys (module docstring)."""
    model = section(tree, "model")
    if model is None or not isinstance(model.get("name"), str):
        return []
    kind, problem = _resolve_name(model, positions)
    if problem is not None:
        return [problem]
    checks = (_check_variant(model, kind, positions), *_check_source_keys(model, kind, positions), _resolve_router(model, positions),
              _check_z_loss(tree, model, positions))
    return [p for p in checks if p]


def _check_source_keys(model: dict, kind: str, positions: PositionMap) -> list[Problem]:
    """`model.path` / `model.revision` where they would be ignored or contradict `model.name`: a
    tiny twin is built locally from its preset, and a local directory named by `model.name` is
    already the checkpoint."""
    preset = get_preset(model["name"]) if kind == "preset" else None
    if preset is not None and preset.is_tiny:
        what = {key: f"would be ignored: {model['name']} is a tiny twin, built locally from its preset (no checkpoint is read)"
                for key in ("path", "revision")}
        fix = {"path": "no `path` (to train a checkpoint you saved, set model.name to its folder)", "revision": "no `revision`"}
    elif kind == "local directory":
        what = {"path": f"model.name already names the local checkpoint {model['name']}; a second folder leaves "
                        "it unclear which one trains",
                "revision": f"would be ignored: model.name names the local checkpoint {model['name']}, not a hub repository"}
        fix = {"path": "no `path` (model.name is the folder read)", "revision": "no `revision` (it selects a hub commit)"}
    else:
        return []
    return [Problem(positions.value(f"model.{key}"), f"model.{key}", what[key], fix[key])
            for key in ("path", "revision") if model.get(key) is not None]


def _resolve_router(model: dict, positions: PositionMap) -> Problem | None:
    """MoE: write the router aux loss out (the checkpoint's coefficient, on); dense: refuse router keys."""
    config = architecture_of(model["name"], model.get("path"))
    if config is None:
        return None
    if "output_router_logits" in config:
        if model.get("router_aux_loss_coef") is None:
            model["router_aux_loss_coef"] = config.get("router_aux_loss_coef", 0.0)
        if model.get("output_router_logits") is None:
            model["output_router_logits"] = True
        return None
    for key in ("router_aux_loss_coef", "output_router_logits"):
        if model.get(key) is not None:
            return Problem(positions.value(f"model.{key}"), f"model.{key}",
                           f"{model['name']} is a dense model without a router", f"no `{key}` (it applies to MoE models)")
    return None


def _check_z_loss(tree: dict, model: dict, positions: PositionMap) -> Problem | None:
    """A router z-loss above 0 needs an MoE model and a method that adds it (sft, cpt)."""
    coef = model.get("router_z_loss_coef")
    if not isinstance(coef, (int, float)) or isinstance(coef, bool) or coef <= 0:
        return None
    where = positions.value("model.router_z_loss_coef")
    if (section(tree, "method") or {}).get("name") == "dpo":
        return Problem(where, "model.router_z_loss_coef", "the router z-loss is added to sft and cpt training, not to dpo",
                       "0 (or no `router_z_loss_coef`) on a dpo recipe")
    config = architecture_of(model["name"], model.get("path"))
    if config is not None and "output_router_logits" not in config:
        return Problem(where, "model.router_z_loss_coef", f"{model['name']} is a dense model without a router",
                       "no `router_z_loss_coef` (it applies to MoE models)")
    return None


def _resolve_name(model: dict, positions: PositionMap) -> tuple[str, Problem | None]:
    name = model["name"]
    if get_preset(name) is not None:
        return "preset", None
    local = Path(os.path.abspath(positions.value("model.name").folder / Path(name).expanduser()))
    if name and local.is_dir():
        model["name"] = str(local)
        return "local directory", None
    if HUB_ID.fullmatch(name):
        return "hub id", None
    suggestions = close_preset_names(name)
    expected = "a preset (" + ", ".join(PRESETS) + "), an existing local directory or a hub id `owner/name`"
    what = f"unknown preset {name!r}"
    return "", Problem(positions.value("model.name"), "model.name", what, expected, suggestions[0] if suggestions else None)


def _check_variant(model: dict, kind: str, positions: PositionMap) -> Problem | None:
    variant: Any = model.get("variant")
    preset = get_preset(model["name"]) if kind == "preset" else None
    if variant is None:
        if preset is not None and preset.default_variant is not None:
            model["variant"] = preset.default_variant
        return None
    if variant not in VARIANTS:
        return None  # the schema reports a bad choice
    where = positions.value("model.variant")
    if preset is None:
        what = f"a variant applies only to presets, and {model['name']!r} is a {kind}"
        return Problem(where, "model.variant", what, "no `variant` (name the exact checkpoint in `model.name`)")
    if preset.hub_ids and variant not in preset.hub_ids:
        what = f"preset {preset.name!r} has no {variant!r} variant"
        return Problem(where, "model.variant", what, one_of(preset.hub_ids))
    return None
