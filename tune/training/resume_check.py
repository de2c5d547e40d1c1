"""Whether a recipe may continue the interrupted run recorded in a run folder: only what continues exactly.

A run folder records the resolved recipe its run trains (`recipe.yaml`, written before training
and rewritten only with the changes a resume was allowed). A rerun compares its own resolved
recipe with that record, key by dotted key (``changes``), and each differing key by the rule its
schema field declares (tune.config.schema: ``RESUME_FREE`` / ``RESUME_LENGTH`` in the field's
`json_schema_extra`; a field without one must be equal):

    free      the run continues exactly whatever the value: where it writes (`output.dir`: the
              folder may have been moved), how often it saves and how many checkpoints it keeps,
              logging and trackers, `description`, `train.resume`, `output.overwrite` (an action of
              one command, never recorded), `data.num_proc` and `data.cache` (byte-identical data)
    length    the run's length (`train.max_steps`, `train.epochs`): may change only where no learning
              rate depends on it, past or next (``length_rule``): a constant schedule (its warmup is
              in steps). A schedule whose lr at a step depends on the total (cosine, linear, the held
              minimum) would continue with another curve than the one it trained on. A new
              `max_steps` below the checkpoint's step is refused (the checkpoint is past the end).
    topology  the job's shape (`launch.nodes`, `launch.processes_per_node`, `train.grad_accumulation`):
              may change only where the run continues exactly on another number of processes
              (``topology_rule``): method cpt (its samples are read in one global order,
              tune.training.corpus_trainer), `launch.strategy: ddp` before and after (its checkpoint
              holds the whole optimizer state, which any number of processes loads) and the same global
              batch. FSDP2 and DeepSpeed ZeRO checkpoints hold per-rank shards: refused there.
    (none)    must be equal: the model, method, adapters, data, seed, optimizer, schedule, lengths,
              batch, precision, strategy, evaluation...

Absent and null compare equal (a record of an older tune version may lack a key whose value is
null, or carry another method's null section). What may change is printed by `tune run`; what may
not is refused (``refusal_problems``: one recipe problem per key, at the position the new recipe
wrote it, with both values), before any data work. Standard library, PyYAML and tune.config only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel

from tune.config.positions import Position, PositionMap
from tune.config.problems import Problem, reading_order
from tune.config.schema import METHOD_NAMES, METHOD_SECTIONS, CorpusDataSection, DataSection, Recipe

RECORD = "recipe.yaml"
# A leaf value of a resolved recipe as plain data (a list of plain values is one leaf).
RecipeValue = str | int | float | bool | list | None
FREE, LENGTH, TOPOLOGY, FIXED = "free", "length", "topology", "fixed"


class UnreadableRecord(Exception):
    """The run folder's recorded recipe exists but is not a recipe tune wrote (``reason`` says why)."""


@dataclass(frozen=True)
class Change:
    """One dotted key whose value differs between the run's record and the new recipe, and its rule."""

    key: str
    recorded: RecipeValue
    new: RecipeValue
    rule: str
    unit: str = ""  # " item(s)" for the length of a list of mappings

    def describe(self) -> str:
        """`train.seed: 42 -> 7`."""
        return f"{self.key}: {self.show(self.recorded)} -> {self.show(self.new)}"

    def show(self, value: RecipeValue) -> str:
        """``value`` as messages write it."""
        return f"{value or 0}{self.unit}" if self.unit else _show(value)


@dataclass(frozen=True)
class Verdict:
    """What a rerun may do with a run: ``allowed`` changes (printed) and ``refused`` ones, each with why."""

    allowed: list[Change]
    refused: list[tuple[Change, str]]

    @property
    def continues(self) -> bool:
        return not self.refused


def read_record(run_dir: Path) -> dict | None:
    """The recipe recorded in ``run_dir`` as plain data (None when there is no `recipe.yaml`).
    Raises UnreadableRecord when the file is not a mapping YAML can read."""
    path = Path(run_dir) / RECORD
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableRecord(f"{path} cannot be read ({exc})") from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UnreadableRecord(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(tree, dict):
        raise UnreadableRecord(f"{path} holds no recipe mapping")
    return tree


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{dotted key: value}`` of every leaf of ``tree``: mappings and lists of mappings are walked
    (list items by index); other lists are one value. Null values are left out (absent = null)."""
    items: dict[str, Any] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            items.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(tree, list) and tree and all(isinstance(item, dict) for item in tree):
        for index, item in enumerate(tree):
            items.update(flatten(item, f"{prefix}.{index}"))
        items[f"{prefix}.#"] = len(tree)  # how many: a shorter list differs even where items match
    elif tree is not None:
        items[prefix] = tree
    return items


def changes(recorded: dict, new: dict) -> list[Change]:
    """Every dotted key whose value differs between ``recorded`` and ``new`` (resolved recipes as
    plain data), in the order the new recipe has them, each with its rule (``rule_of``)."""
    old_items, new_items = flatten(recorded), flatten(new)
    keys = list(new_items) + [key for key in old_items if key not in new_items]
    found = []
    for key in keys:
        old, value = old_items.get(key), new_items.get(key)
        if not _same(old, value):
            unit = " item(s)" if key.endswith(".#") else ""  # a list of mappings of another length
            key = key.removesuffix(".#")
            found.append(Change(key, old, value, rule_of(key, new), unit))
    return found


def rule_of(key: str, new: dict) -> str:
    """The resume rule the schema declares for dotted ``key`` (FREE, LENGTH or FIXED): the innermost
    field on its path that declares one decides; none means FIXED. ``new`` picks the method section."""
    model: type[BaseModel] | None = Recipe
    rule = FIXED
    parts = key.split(".")
    for index, part in enumerate(parts):
        if model is None:
            break
        if part.isdigit() or part == "#":
            continue
        field = model.model_fields.get(part)
        if field is None:
            return FIXED
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        rule = extra.get("on_resume", rule)
        model = _section_of(field.annotation, new, ".".join(parts[: index + 1]))
    return rule


def _section_of(annotation: Any, new: dict, path: str) -> type[BaseModel] | None:
    """The schema class a field's annotation holds (through Optional, list and the method union)."""
    if path == "method":
        name = (new.get("method") or {}).get("name", "sft")
        return dict(zip(METHOD_NAMES, METHOD_SECTIONS)).get(name)
    if path == "data":
        return CorpusDataSection if "corpora" in (new.get("data") or {}) else DataSection
    candidates = [annotation]
    while candidates:
        current = candidates.pop()
        if isinstance(current, type) and issubclass(current, BaseModel):
            return current
        candidates.extend(get_args(current))  # Optional, unions, list[...]; nothing for plain values
    return None


def length_rule(recorded: dict, new: dict, checkpoint_step: int | None) -> str | None:
    """Why the run's length may not change here (None when it may): every learning rate, past and
    next, must stay the same, so the schedule must not depend on the total number of steps."""
    old_train, new_train = recorded.get("train") or {}, new.get("train") or {}
    schedules = {old_train.get("scheduler"), new_train.get("scheduler")}
    if schedules != {"constant"}:
        scheduler = new_train.get("scheduler")
        return (f"with `train.scheduler: {scheduler}` the learning rate of every step depends on the run's total "
                "steps, so the steps already trained followed another curve; only a constant schedule may change length")
    steps = new_train.get("max_steps")
    if checkpoint_step is not None and isinstance(steps, int) and steps < checkpoint_step:
        return f"the run's checkpoint is at step {checkpoint_step}, past the new end of {steps} steps"
    return None


def topology_rule(recorded: dict, new: dict) -> str | None:
    """Why the job's shape may not change here (None when it may; module docstring: ``topology``)."""
    def shape(tree: dict) -> tuple[str | None, str | None, int | None]:
        train, launch = tree.get("train") or {}, tree.get("launch") or {}
        sizes = [launch.get("nodes", 1), launch.get("processes_per_node", 1), train.get("per_device_batch_size", 1),
                 train.get("grad_accumulation") or 1]
        batch = math.prod(sizes) if all(isinstance(size, int) for size in sizes) else None
        return (tree.get("method") or {}).get("name", "sft"), launch.get("strategy", "ddp"), batch

    (old_method, old_strategy, old_batch), (method, strategy, batch) = shape(recorded), shape(new)
    if method != "cpt" or old_method != "cpt":
        return ("only method cpt reads its data in one order that is the same on any number of processes; "
                "this run must resume on the topology it was saved on")
    if strategy != "ddp" or old_strategy != "ddp":
        return (f"a `launch.strategy: {old_strategy}` checkpoint is resumed on the topology it was saved on; "
                "only ddp checkpoints (the whole optimizer state in one file) load on another number of processes")
    if batch is None or batch != old_batch:
        return (f"the global batch would change ({old_batch} -> {batch} sequences per step): keep nodes x "
                "processes_per_node x per_device_batch_size x grad_accumulation equal (`train.global_batch_size` does)")
    return None


def verdict(recorded: dict, new: dict, checkpoint_step: int | None) -> Verdict:
    """Which of the changes from ``recorded`` to ``new`` a resume from ``checkpoint_step`` allows."""
    allowed, refused = [], []
    for change in changes(recorded, new):
        if change.rule == FREE:
            allowed.append(change)
        elif change.rule == LENGTH:
            why = length_rule(recorded, new, checkpoint_step)
            (refused.append((change, why)) if why else allowed.append(change))
        elif change.rule == TOPOLOGY:
            why = topology_rule(recorded, new)
            (refused.append((change, why)) if why else allowed.append(change))
        else:
            refused.append((change, "the checkpoint continues only the run it was saved from"))
    return Verdict(allowed, refused)


def refusal_problems(result: Verdict, run_dir: Path, checkpoint: str, positions: PositionMap | None,
                     source: Path) -> list[Problem]:
    """One problem per refused change, at the position the new recipe set the key (the recipe file
    when a default set it), then one saying what to do."""
    problems = []
    for change, why in result.refused:
        where = positions.value(change.key) if positions is not None else Position(str(source))
        problems.append(Problem(where, change.key, f"{change.show(change.new)} here, {change.show(change.recorded)} "
                                f"in the interrupted run in {run_dir} ({checkpoint}): it cannot change when the run "
                                f"resumes ({why})", f"{change.show(change.recorded)} to continue that run"))
    record = Position(str(Path(run_dir) / RECORD))
    problems.append(Problem(record, None, f"{run_dir} holds an interrupted run whose recorded recipe differs in "
                            f"{len(result.refused)} key(s) that must not change when it resumes",
                            f"the recorded values (`tune run {Path(run_dir) / RECORD}` continues it as it was), "
                            "or output.overwrite=true to start over there, or another output.dir for a new run"))
    return reading_order(problems, positions.root.source if positions is not None else str(source))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    return a == b


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 80 else repr(value[:77] + "...")
    return str(value)
