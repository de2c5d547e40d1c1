"""Paths in a recipe, made absolute where they were written; the default run folder.

Run on the merged recipe tree before schema validation; each function fixes values in place and
returns the problems it found. A value of the wrong type is left alone: the schema reports it.

- ``tune:REL`` names the file ``REL`` inside the tune package; it must exist.
- Relative ``data.datasets[].path``, ``model.path`` and ``model.tokenizer`` are read from the
  folder of the file that wrote them (the current folder for overrides). Data paths must exist;
  ``model.path``/``model.tokenizer`` may live on another machine, so only their ``tune:`` form is checked.
- ``output.dir``: relative to the current folder; unset means ``runs/<recipe stem>-<YYYYmmdd-HHMMSS>``.
- A `cpt` recipe's corpus prefixes (``data.corpora[].prefix``, ``data.eval_corpora[].prefix``: a
  Megatron ``PREFIX.bin`` + ``PREFIX.idx`` pair): ``tune:REL`` names a corpus shipped with tune, whose
  pair must exist; a relative prefix is read from ``data.corpus_root`` when set (itself relative to the
  folder of the file that wrote it), else from the folder of the file that wrote the prefix; absolute
  as written. Existence is not required here: published recipes name corpora on a cluster, and
  `tune validate` runs anywhere (tune.recipe.corpus_checks reads the ones present).

What needs the preset registry or the dataset cards (model names, cards, formats) is checked one
room up, in ``tune.recipe``.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from tune.config.positions import PositionMap
from tune.config.problems import Problem
from tune.resources import TUNE_PREFIX, resolve_tune_path


def resolve_paths(tree: dict, positions: PositionMap, recipe_stem: str, now: datetime) -> list[Problem]:
    """Apply every resolution of this module to ``tree`` in place; the problems found, in recipe order."""
    problems = _resolve_model_paths(tree, positions)
    problems += _resolve_data_paths(tree, positions)
    problems += _resolve_corpus_paths(tree, positions)
    resolve_output_dir(tree, recipe_stem, now)
    return problems


def section(tree: dict, name: str) -> dict | None:
    """``tree[name]`` when it is a mapping, else None (the schema reports a wrong type)."""
    value = tree.get(name)
    return value if isinstance(value, dict) else None


def dataset_entries(tree: dict) -> list[tuple[int, dict]]:
    """``(index, entry)`` of each `data.datasets` item that is a mapping (the schema reports the others)."""
    data = section(tree, "data")
    entries = data.get("datasets") if data else None
    if not isinstance(entries, list):
        return []
    return [(index, entry) for index, entry in enumerate(entries) if isinstance(entry, dict)]


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


def _resolve_model_paths(tree: dict, positions: PositionMap) -> list[Problem]:
    model = section(tree, "model")
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
    return problems


def _resolve_data_paths(tree: dict, positions: PositionMap) -> list[Problem]:
    problems = []
    for index, entry in dataset_entries(tree):
        if isinstance(entry.get("path"), str):
            problem = _resolve_data_path(entry, f"data.datasets.{index}.path", positions)
            if problem is not None:
                problems.append(problem)
    return problems


def _resolve_data_path(entry: dict, path: str, positions: PositionMap) -> Problem | None:
    resolved, problem = resolve_path(entry["path"], path, positions)
    if problem is None and not resolved.exists():
        written = entry["path"]
        where = "" if Path(written).expanduser().is_absolute() else f" (relative paths are read from {positions.value(path).folder})"
        problem = Problem(positions.value(path), path, f"no such data file: {resolved}", f"an existing data file or folder{where}")
    if problem is None:
        entry["path"] = str(resolved)
    return problem


def _resolve_corpus_paths(tree: dict, positions: PositionMap) -> list[Problem]:
    """Resolve `data.corpus_root` and the corpus prefixes (module docstring)."""
    data = section(tree, "data")
    if data is None:
        return []
    problems = []
    root = None
    if isinstance(data.get("corpus_root"), str):
        resolved, problem = resolve_path(data["corpus_root"], "data.corpus_root", positions)
        if problem is not None:
            problems.append(problem)
        else:
            data["corpus_root"] = root = str(resolved)
    for name in ("corpora", "eval_corpora"):
        entries = data.get(name)
        if not isinstance(entries, list):
            continue
        for index, entry in enumerate(entries):
            if isinstance(entry, dict) and isinstance(entry.get("prefix"), str):
                problem = _resolve_prefix(entry, f"data.{name}.{index}.prefix", root, positions)
                if problem is not None:
                    problems.append(problem)
    return problems


def _resolve_prefix(entry: dict, path: str, root: str | None, positions: PositionMap) -> Problem | None:
    written = entry["prefix"]
    if written.startswith(TUNE_PREFIX):
        try:
            resolved = resolve_tune_path(written[len(TUNE_PREFIX):])
        except ValueError:
            return Problem(positions.value(path), path, f"bad `tune:` path {written!r}",
                           "a corpus shipped with tune, like `tune:samples/corpora/tiny-ja`")
        missing = [f"{resolved}{suffix}" for suffix in (".bin", ".idx") if not Path(f"{resolved}{suffix}").is_file()]
        if missing:
            return Problem(positions.value(path), path, f"no such corpus shipped with tune: {', '.join(missing)}",
                           "the prefix of a `.bin` + `.idx` pair inside the tune package")
    elif Path(written).expanduser().is_absolute():
        resolved = Path(written).expanduser()
    else:
        base = Path(root) if root is not None else positions.value(path).folder
        resolved = base / Path(written).expanduser()
    entry["prefix"] = os.path.abspath(resolved)
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
