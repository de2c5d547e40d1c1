"""Preflight: what every rank of a job checks before the first step, so that a job fails in seconds
with one clear message instead of hours later, or hanging.

`tune run` calls ``run_preflight`` right after the process group exists
(tune.training.distributed.ensure_process_group, which bounds the rendezvous by
`launch.timeout_minutes`). Every rank gathers its own facts, reading only; the ranks exchange them
(one all-gather) and every rank reaches the same verdict from the same facts:

    world      the job's world size equals `launch.nodes` x `launch.processes_per_node` (a launcher
               started with other counts: the recipe's global batch and sharding would be another run)
    versions   every rank has the same tune, torch, transformers, trl, accelerate and peft (a node
               with another environment computes other numbers, or fails mid-run in a collective)
    recipe     every rank resolved the same recipe (a hash of it without `output.dir`, which the
               main rank decides afterwards): a recipe file edited between the nodes' starts, other
               overrides, another base
    folder     `output.dir` (or the folder that will hold it) is writable from every rank, and its
               file system has room for one more checkpoint (``checkpoint_bytes``); only ranks that
               write there check the room: the main rank, and with a sharded strategy every rank
    cache      whether each rank sees the main rank's `$TUNE_CACHE` (a probe file the main rank
               writes): shared by the job, the data is prepared once, by the main rank; node-local,
               once per node, by each node's first process (tune.data.cache.JobPreparation)

A failure is printed once: by the rank that found it (its own folder or room), by the main rank for
what compares ranks (versions, recipe, world size: naming each rank that differs, with its host);
when several ranks found the same, by the lowest. Every other rank stops silently with the same exit
status (2), through tune.training.distributed.StoppedElsewhere.

On one process only the world size and the folder are checked (nothing to compare).

The checkpoint's size is estimated from the architecture alone (tune.models.memory's parameter
counts; no torch, no download): full fine-tuning saves every weight (4 bytes with fp32 masters,
else the 16-bit dtype) and the optimizer's states (AdamW: two per trainable weight, in the
master's width); LoRA saves the adapter and its optimizer states. A model whose architecture is not
known here (a hub id not in the presets) is checked for writability only, and said so.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tune.cache_dir import cache_root
from tune.config.loaded_recipe import LoadedRecipe
from tune.config.schema import Recipe
from tune.data.cache import JobPreparation
from tune.errors import UserError
from tune.training import distributed

PACKAGES = ("tune", "torch", "transformers", "trl", "accelerate", "peft")
GIB = 1024**3
MARGIN = 1.05  # the estimate leaves out file headers, trainer_state.json, RNG states, the tokenizer


class PreflightFailed(UserError):
    """A check of the preflight failed (module docstring); the message says which, on which rank, and
    what to do."""


@dataclass(frozen=True)
class Preflight:
    """What the preflight decided: this process's part in preparing the data, and the checkpoint
    estimate it checked the room against (None: the architecture is not known here)."""

    job: JobPreparation
    checkpoint_bytes: int | None


def installed_versions() -> dict[str, str | None]:
    """The versions of ``PACKAGES`` installed for this process (None: not installed)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def recipe_hash(loaded: LoadedRecipe) -> str:
    """A hash of the resolved recipe without `output.dir` (decided later, on the main rank)."""
    data = loaded.recorded().to_dict()
    data.get("output", {}).pop("dir", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def checkpoint_bytes(recipe: Recipe) -> int | None:
    """The estimated size of one checkpoint of ``recipe`` (module docstring), all ranks' shards
    together; None when the architecture is not known here."""
    from tune.models.memory import memory_estimate

    estimate = memory_estimate(recipe)
    if estimate is None:
        return None
    trainable = estimate.trainable
    if recipe.method.peft == "none":
        width = 4 if recipe.train.master_weights == "fp32" else 2
        params = estimate.quantized_params + estimate.expert_params + estimate.other_params
        weights = params * width
    else:
        width = 4
        weights = trainable * width
    states = 2 * trainable * width if recipe.train.optimizer.startswith("adamw") else trainable * width
    return int((weights + states) * MARGIN)


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def folder_facts(run_dir: Path, needed: int | None, checks_room: bool) -> str | None:
    """What is wrong with writing a checkpoint into ``run_dir`` from this process, or None."""
    place = _existing_ancestor(Path(run_dir))
    if not place.is_dir():
        return f"output.dir {run_dir}: {place} is a file, not a folder; choose another output.dir"
    if not os.access(place, os.W_OK | os.X_OK):
        return (f"output.dir {run_dir}: {place} is not writable by this process (user {os.getuid()}); "
                "choose a folder this job can write")
    if checks_room and needed is not None:
        free = shutil.disk_usage(place).free
        if free < needed:
            return (f"output.dir {run_dir}: the file system of {place} has {free / GIB:.1f} GiB free, and one "
                    f"checkpoint of this recipe takes about {needed / GIB:.1f} GiB (weights and optimizer states); "
                    "free space there or choose an output.dir on a larger file system")
    return None


def _probe_path(token: str) -> Path:
    return cache_root() / f".tune-probe-{token}"


def run_preflight(loaded: LoadedRecipe) -> Preflight:
    """Run the checks of the module docstring on this rank (every rank calls it, with the process
    group already made); returns what was decided, or raises (PreflightFailed on the rank that prints
    the failure, StoppedElsewhere on the others)."""
    recipe = loaded.recipe
    here = distributed.world()
    wanted = recipe.launch.nodes * recipe.launch.processes_per_node
    needed = checkpoint_bytes(recipe)
    sharded = recipe.launch.strategy != "ddp"
    if not here.distributed:
        problems = []
        if wanted != 1:
            problems.append(_world_problem(recipe, 1))
        folder = folder_facts(Path(recipe.output.dir), needed, checks_room=True)
        if folder:
            problems.append(folder)
        if problems:
            raise PreflightFailed("\n".join(problems))
        return Preflight(JobPreparation(prepares=True, preparer="this process", token="single"), needed)

    # Collectives only from here to the all-gather, with nothing in between that can raise.
    token = distributed.broadcast_from_main(secrets.token_hex(8) if here.is_main else None)
    probe_problem = None
    if here.is_main:
        try:
            _probe_path(token).parent.mkdir(parents=True, exist_ok=True)
            _probe_path(token).write_text(socket.gethostname())
        except OSError as error:
            probe_problem = f"the data cache {cache_root()} ($TUNE_CACHE) is not writable: {error}"
    distributed.barrier()
    try:
        folder = folder_facts(Path(recipe.output.dir), needed, checks_room=here.is_main or sharded)
    except OSError as error:
        folder = f"output.dir {recipe.output.dir}: cannot be checked: {error}"
    facts = {
        "rank": here.rank, "node": here.node_rank, "local_rank": here.local_rank, "host": socket.gethostname(),
        "world_size": here.world_size, "versions": installed_versions(), "recipe": recipe_hash(loaded),
        "folder": folder, "cache_problem": probe_problem, "sees_cache": _probe_path(token).is_file(),
    }
    everyone = distributed.all_gather_objects(facts)
    if here.is_main:
        _probe_path(token).unlink(missing_ok=True)

    problems = verdict(everyone, recipe)
    mine = [text for owner, text in problems if owner == here.rank]
    if mine:
        raise PreflightFailed("\n".join(mine))
    if problems:
        raise distributed.StoppedElsewhere(2)
    return Preflight(preparation(here, everyone, token), needed)


def verdict(everyone: list[dict], recipe: Recipe) -> list[tuple[int, str]]:
    """The problems of the gathered ``everyone`` (one facts dict per rank, in rank order), each with
    the rank that prints it (module docstring). Pure: every rank computes the same list."""
    problems: list[tuple[int, str]] = []
    main = everyone[0]
    wanted = recipe.launch.nodes * recipe.launch.processes_per_node
    if main["world_size"] != wanted:
        problems.append((0, _world_problem(recipe, main["world_size"])))
    differing = []
    for facts in everyone[1:]:
        for name in PACKAGES:
            if facts["versions"].get(name) != main["versions"].get(name):
                differing.append(f"{name} {facts['versions'].get(name)} on rank {facts['rank']} ({facts['host']}), "
                                 f"{main['versions'].get(name)} on rank 0 ({main['host']})")
    if differing:
        problems.append((0, "preflight: the job's processes run different software: " + "; ".join(differing)
                         + ". Install the same versions on every node (one shared environment), then resubmit"))
    other = [f"rank {f['rank']} ({f['host']})" for f in everyone[1:] if f["recipe"] != main["recipe"]]
    if other:
        problems.append((0, f"preflight: {', '.join(other)} resolved another recipe than rank 0 ({main['host']}): "
                            "the recipe file (or a base it extends) changed between the starts of the processes, or "
                            "they were given other overrides; start every process with the same frozen recipe (the "
                            "run folder's recipe.yaml, as the `tune launch` job scripts do)"))
    if main["cache_problem"]:
        problems.append((0, f"preflight: {main['cache_problem']}; set TUNE_CACHE to a writable folder"))
    by_text: dict[str, list[dict]] = {}
    for facts in everyone:
        if facts["folder"]:
            by_text.setdefault(facts["folder"], []).append(facts)
    for text, found in by_text.items():
        ranks = ", ".join(f"rank {f['rank']} ({f['host']})" for f in found)
        problems.append((found[0]["rank"], f"preflight on {ranks}: {text}"))
    return problems


def preparation(here: distributed.World, everyone: list[dict], token: str) -> JobPreparation:
    """This rank's part in preparing the data (module docstring), from who sees the main rank's cache."""
    sees = everyone[here.rank]["sees_cache"]
    node_sharing = [f for f in everyone if f["node"] == here.node_rank]
    if sees:
        waiting_here = sorted(f["local_rank"] for f in node_sharing if f["sees_cache"] and f["rank"] != 0)
        return JobPreparation(prepares=here.is_main, preparer="rank 0", token=token,
                              announces=bool(waiting_here) and here.local_rank == waiting_here[0])
    local = sorted(f["local_rank"] for f in node_sharing if not f["sees_cache"])
    return JobPreparation(prepares=here.local_rank == local[0], preparer=f"local rank {local[0]} of node {here.node_rank}",
                          token=token, announces=len(local) > 1 and here.local_rank == local[1])


def _world_problem(recipe: Recipe, started: int) -> str:
    launch = recipe.launch
    wanted = launch.nodes * launch.processes_per_node
    return (f"launch: the recipe asks for {launch.nodes} node(s) x {launch.processes_per_node} process(es) = {wanted}, "
            f"but this job was started with {started} process(es); start it with {wanted} (torchrun --nnodes "
            f"{launch.nodes} --nproc-per-node {launch.processes_per_node}, or `tune launch`), or set "
            f"launch.nodes=... launch.processes_per_node=... to match the launch")
