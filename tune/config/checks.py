"""Checks and resolutions that need the file system or the preset registry.

Run on the merged recipe data before schema validation; each function fixes values in place
(relative paths become absolute, defaults that depend on the moment are filled in) and returns
the problems it found. A value of the wrong type is left alone: the schema reports it.

- ``tune:REL`` names the file ``REL`` inside the tune package; it must exist.
- ``data.datasets[].card`` must name a dataset card; an entry without ``share`` gets the card's
  default weight (1 for a plain file) when it sets none, so the resolved recipe shows it. Its rows
  (the card's kind, or the format's) must be what ``method.name`` trains on.
- Relative ``data.datasets[].path``, ``model.path`` and ``model.tokenizer`` are read from the
  folder of the file that wrote them (the current folder for overrides). Data paths must exist;
  ``model.path``/``model.tokenizer`` may live on another machine, so only their ``tune:`` form is checked.
- ``model.name``: a preset, else an existing local directory (made absolute), else a hub id
  ``owner/name``; anything else is an unknown preset.
- ``model.variant``: only for presets, and only one the preset offers; filled with the preset's
  default when unset.
- ``model.router_aux_loss_coef`` / ``output_router_logits``: on an MoE model, written out when
  unset (the checkpoint's coefficient, 0.01 for LLM-jp-4 32B-A3B, and on: LLM-jp trained with it);
  on a dense model, refused.
- ``output.dir``: relative to the current folder; unset means ``runs/<recipe stem>-<YYYYmmdd-HHMMSS>``.
"""

from __future__ import annotations

import difflib
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from tune.config.errors import Problem, one_of
from tune.config.positions import PositionMap
from tune.config.schema import ModelSection
from tune.config.schema_info import literal_choices
from tune.models.presets import PRESETS, architecture_of, close_preset_names, get_preset
from tune.resources import TUNE_PREFIX, resolve_tune_path

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
VARIANTS = literal_choices(ModelSection.model_fields["variant"].annotation)


def resolve(tree: dict, positions: PositionMap, recipe_stem: str, now: datetime | None = None) -> list[Problem]:
    """Apply every check of this module to ``tree`` in place; the problems found, in recipe order."""
    problems = resolve_model(tree, positions)
    problems += resolve_datasets(tree, positions)
    resolve_output_dir(tree, recipe_stem, now or datetime.now())
    return problems


def _section(tree: dict, name: str) -> dict | None:
    value = tree.get(name)
    return value if isinstance(value, dict) else None


def resolve_path(value: str, path: str, positions: PositionMap) -> tuple[Path | None, Problem | None]:
    """The absolute path ``value`` names (see the module docstring), or a problem for a missing ``tune:`` file."""
    if value.startswith(TUNE_PREFIX):
        rel = value[len(TUNE_PREFIX):]
        try:
            resolved = resolve_tune_path(rel)
        except ValueError:
            expected = "a file inside the tune package, like `tune:samples/demo-chat.jsonl`"
            return None, Problem(positions.value(path), path, f"bad `tune:` path {value!r}", expected)
        if not resolved.exists():
            expected = "an existing file shipped with tune (inside the `tune` package folder)"
            return None, Problem(positions.value(path), path, f"no such file shipped with tune: tune/{rel}", expected)
        return resolved, None
    folder = positions.value(path).folder
    return Path(os.path.abspath(folder / Path(value).expanduser())), None


def resolve_datasets(tree: dict, positions: PositionMap) -> list[Problem]:
    """Check each dataset's card and path, make paths absolute and fill in default weights."""
    data = _section(tree, "data")
    entries = data.get("datasets") if data else None
    if not isinstance(entries, list):
        return []
    problems = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        card, problem = _check_card(entry, f"data.datasets.{index}", positions)
        if problem is None:
            problem = _check_format(entry, f"data.datasets.{index}.format", positions)
        if problem is None:
            problem = _resolve_data_path(entry, f"data.datasets.{index}.path", positions)
        if problem is None:
            problem = _check_kind(entry, card, _method_name(tree), f"data.datasets.{index}", positions)
        if problem is not None:
            problems.append(problem)
        elif "share" not in entry or entry["share"] is None:
            entry.setdefault("weight", card.default_weight if card is not None else 1.0)
    return problems


# The dataset kind each method trains on (cards' `kind`, converters' `kind`).
METHOD_DATA_KINDS = {"sft": ("sft", "conversations (sft cards, or messages / llmjp4_sft / sharegpt / alpaca files)"),
                     "dpo": ("preference", "preference pairs (preference cards, or `format: preference` files)")}


def _method_name(tree: dict):
    method = _section(tree, "method")
    return method.get("name", "sft") if method is not None else "sft"


def _check_kind(entry: dict, card, method, key: str, positions: PositionMap) -> Problem | None:
    """A problem when the dataset holds rows of another kind than the method trains on."""
    if method not in METHOD_DATA_KINDS:
        return None  # an unknown method name: the schema reports it
    from tune.data.converters import CONVERTERS

    converter = entry.get("format") or "messages"
    kind = card.kind if card is not None else getattr(CONVERTERS.get(converter), "kind", None)
    wanted, what = METHOD_DATA_KINDS[method]
    if kind is None or kind == wanted:
        return None
    name = f"card {card.name!r}" if card is not None else f"format {converter!r}"
    return Problem(positions.key(key), key, f"{name} holds {kind} rows, and method `{method}` trains on {what}",
                   "a dataset of that kind, or another method.name")


def _check_card(entry: dict, key: str, positions: PositionMap):
    """The card ``entry`` names (None for a plain file), or a problem for an unknown card name."""
    name = entry.get("card")
    if not isinstance(name, str):
        return None, None
    from tune.data.cards import card_names, load_card

    if name not in card_names():
        suggestions = difflib.get_close_matches(name, card_names(), n=1)
        what = f"no dataset card named {name!r}"
        return None, Problem(positions.value(f"{key}.card"), f"{key}.card", what,
                             "a card listed by `tune data ls`", suggestions[0] if suggestions else None)
    return load_card(name), None


def _check_format(entry: dict, key: str, positions: PositionMap) -> Problem | None:
    """A problem when ``format`` names no converter."""
    name = entry.get("format")
    if not isinstance(name, str):
        return None
    from tune.data.converters import CONVERTERS

    if name in CONVERTERS:
        return None
    close = difflib.get_close_matches(name, CONVERTERS, n=1)
    return Problem(positions.value(key), key, f"unknown format {name!r}", one_of(CONVERTERS), close[0] if close else None)


def _resolve_data_path(entry: dict, path: str, positions: PositionMap) -> Problem | None:
    if not isinstance(entry.get("path"), str):
        return None
    resolved, problem = resolve_path(entry["path"], path, positions)
    if problem is None and not resolved.exists():
        written = entry["path"]
        where = "" if Path(written).expanduser().is_absolute() else f" (relative paths are read from {positions.value(path).folder})"
        problem = Problem(positions.value(path), path, f"no such data file: {resolved}", f"an existing data file or folder{where}")
    if problem is None:
        entry["path"] = str(resolved)
    return problem


def resolve_model(tree: dict, positions: PositionMap) -> list[Problem]:
    """Resolve ``model.path``, ``model.tokenizer``, ``model.name`` and ``model.variant`` (module docstring)."""
    model = _section(tree, "model")
    if model is None:
        return []
    problems = []
    for key in ("path", "tokenizer"):
        if isinstance(model.get(key), str):
            resolved, problem = resolve_path(model[key], f"model.{key}", positions)
            if problem is not None:
                problems.append(problem)
            else:
                model[key] = str(resolved)
    name = model.get("name")
    if not isinstance(name, str):
        return problems
    kind, problem = _resolve_name(model, positions)
    if problem is not None:
        return problems + [problem]
    variant_problem = _check_variant(model, kind, positions)
    router_problem = _resolve_router(model, positions)
    return problems + [p for p in (variant_problem, router_problem) if p]


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


def resolve_output_dir(tree: dict, recipe_stem: str, now: datetime) -> None:
    """Make ``output.dir`` absolute (relative to the current folder), or fill in the default run folder."""
    if tree.get("output") is None:
        tree["output"] = {}
    output = tree["output"]
    if not isinstance(output, dict):
        return
    out_dir = output.get("dir")
    if out_dir is None:
        output["dir"] = str(Path.cwd() / "runs" / f"{recipe_stem}-{now:%Y%m%d-%H%M%S}")
    elif isinstance(out_dir, str):
        output["dir"] = os.path.abspath(Path(out_dir).expanduser())
