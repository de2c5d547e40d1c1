"""The rooms of tune/ and which way imports run between them (every import, lazy ones included).

    ground    tune.errors, tune.resources, tune.cache_dir, tune.hub, tune.harmony_tokens: the standard library only
    config    the recipe schema, YAML, overrides, paths: pydantic, PyYAML and the ground only
    models    presets, tokenizers, loading, adapters, kernels, memory: config and the ground
    data      cards, converters, the pipeline: config and the ground, never models
    recipe    the resolve layer (load_recipe): config, models, data
    plan      what `tune validate` and `tune plan` print (tune.plan, tune.plan_cpt): config, models, and data
              for the sizes of a cpt recipe's corpora (tune.data.corpus_blend, read lazily, no torch)
    launch    `tune launch`'s job scripts for PBS and SLURM: config, models, plan; the standard library only
    training  trainer arguments, callbacks, resume: config, data, models
    methods   METHODS' training functions: everything below
    export    merge, model cards, chat: config, models, data, training
    cli       the verbs: everything
A room never imports one above it; a module never imports another module's underscore names.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

TUNE = Path(__file__).resolve().parents[2] / "tune"
GROUND = {"tune", "tune.errors", "tune.resources", "tune.cache_dir", "tune.hub", "tune.harmony_tokens"}
ALLOWED = {
    "ground": {"ground"},
    "config": {"ground", "config"},
    "models": {"ground", "config", "models"},
    "data": {"ground", "config", "data"},
    "recipe": {"ground", "config", "models", "data", "recipe"},
    "plan": {"ground", "config", "models", "data", "plan"},
    "launch": {"ground", "config", "models", "plan", "launch"},
    "training": {"ground", "config", "data", "models", "training"},
    "methods": {"ground", "config", "models", "data", "training", "methods"},
    "export": {"ground", "config", "models", "data", "training", "export"},
    "cli": {"ground", "config", "recipe", "models", "data", "training", "methods", "export", "plan", "launch", "cli"},
}
THIRD_PARTY = {"ground": set(), "config": {"pydantic", "yaml"}, "launch": set()}  # launch: never torch


def module_name(path: Path) -> str:
    parts = path.relative_to(TUNE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    if module in GROUND:
        return "ground"
    if module in ("tune.cli", "tune.cli_data", "tune.cli_tokenize", "tune.__main__"):
        return "cli"
    if module == "tune.plan_cpt":
        return "plan"
    return module.split(".")[1]


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import statement in ``path``, wherever it stands."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


MODULES = sorted(TUNE.rglob("*.py"))


def test_every_module_belongs_to_a_known_room():
    assert {room(module_name(path)) for path in MODULES} <= set(ALLOWED)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(TUNE.parent)))
def test_imports_run_down_the_rooms_only(path):
    here = room(module_name(path))
    wrong = []
    for line, target, names in imports(path):
        if target == "tune" or target.startswith("tune."):
            candidates = [target] + [f"{target}.{name}" for name in names]
            there = room(next((c for c in candidates if room(c) != "ground" or c in GROUND), target))
            if there not in ALLOWED[here]:
                wrong.append(f"line {line}: {here} imports {target} ({there})")
        elif here in THIRD_PARTY:
            top = target.split(".")[0]
            if top not in sys.stdlib_module_names and top != "__future__" and top not in THIRD_PARTY[here]:
                wrong.append(f"line {line}: {here} imports the third-party {top}")
    assert not wrong, wrong


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(TUNE.parent)))
def test_no_module_imports_another_modules_underscore_names(path):
    wrong = []
    for line, target, names in imports(path):
        if not target.startswith("tune"):
            continue
        private_parts = [part for part in target.split(".") if part.startswith("_") and part not in ("__init__", "__main__")]
        private_names = [name for name in names if name.startswith("_")]
        if private_parts or private_names:
            wrong.append(f"line {line}: from {target} import {', '.join(names)}")
    assert not wrong, wrong


def test_no_two_modules_share_a_name():
    """Names say what a module does: two files of one name (merge.py, errors.py) doing different jobs confuse."""
    stems: dict[str, list[str]] = {}
    for path in MODULES:
        if path.stem not in ("__init__", "__main__"):
            stems.setdefault(path.stem, []).append(str(path.relative_to(TUNE.parent)))
    assert {stem: paths for stem, paths in stems.items() if len(paths) > 1} == {}
