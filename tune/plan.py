"""What a recipe will do before it loads anything: the lines `tune validate` (and `tune run`) print.

Pure python (no torch): each line comes from the preset's architecture or a local checkpoint's
config.json, so `tune validate` stays instant. One function per topic, each in the module that
owns the fact:
    LoRA targets and trainable parameters     tune.models.adapters.lora_plan
    Liger kernels and the loss head           tune.models.liger_kernels.liger_plan
    Memory: weights by storage, LoRA, states  tune.models.memory.memory_plan
    Remote code (`model.trust_remote_code`)   tune.config.remote_code.remote_code_plan
    A cpt recipe's corpora (sizes, shares,    tune.data.corpus_summary.corpus_plan_lines
      steps; deferred when not here)
    Deferred: what only the machine that      tune.models.machine_checks.deferred_checks
      trains can tell (checked by `tune run`
      before any data work)

`tune plan` (``plan_report``) goes further, per GPU of the run: parameters, memory by part under
`launch.strategy` (tune.models.training_memory), tokens per step, optimizer steps, wall time at a
stated MFU on a named GPU (tune.models.gpus, tune.models.flops) and whether it fits. The steps
need the training data's size, which only preparing the data tells exactly (the prepared-data
cache's key needs the tokenizer and every source file's digest); ``plan_report`` takes it from
the command line (`--samples N` / `--tokens N`), from the data report of an earlier run of the same
data in `output.dir`, or estimates it from the cards' `approx_rows` and the local files' rows, and
its output says which (docs/plan.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tune.config.loaded_recipe import LoadedRecipe
from tune.config.positions import PositionMap
from tune.config.schema import Recipe
from tune.errors import UserError
from tune.models.gpus import DEFAULT_GPU, FIT_MARGIN, Gpu, gpu_named
from tune.models.memory import size_text
from tune.models.training_memory import TrainingMemory
from tune.resources import shipped_cards_dir


def plan_lines(recipe: Recipe, positions: PositionMap | None = None) -> list[str]:
    """Every plan line for ``recipe``, in a fixed order (empty topics print nothing); ``positions``
    (where each key was written) lets a line name the file and line that asked for something."""
    from tune.config.remote_code import remote_code_plan
    from tune.data.corpus_summary import corpus_plan_lines
    from tune.models.adapters import lora_plan
    from tune.models.liger_kernels import liger_plan
    from tune.models.machine_checks import deferred_checks
    from tune.models.memory import memory_plan

    lines: list[str] = [topology_line(recipe)]
    for topic in (lora_plan, liger_plan, memory_plan):
        lines += topic(recipe)
    lines += remote_code_plan(recipe, positions)
    lines += corpus_plan_lines(recipe)
    deferred = deferred_checks(recipe)
    if deferred:
        lines.append("deferred to `tune run` on the machine that trains (not checked here): " + "; ".join(deferred))
    else:
        lines.append("deferred: nothing; no setting of this recipe depends on the machine that trains")
    return lines


def topology_line(recipe: Recipe) -> str:
    """The job's shape and its global batch, as nodes x processes x micro batch x accumulation (the
    accumulation derived from `train.global_batch_size` when it is set, which the schema already
    refused if the topology cannot reach it)."""
    launch, train = recipe.launch, recipe.train
    processes = launch.nodes * launch.processes_per_node
    accumulation = train.grad_accumulation
    global_batch = processes * train.per_device_batch_size * accumulation
    source = ("train.global_batch_size" if train.global_batch_size is not None
              else "train.global_batch_size not set: it follows the topology")
    return (f"topology: {launch.nodes} node(s) x {launch.processes_per_node} process(es) = {processes}, launch.strategy "
            f"{launch.strategy}; global batch {launch.nodes} x {launch.processes_per_node} x micro batch "
            f"{train.per_device_batch_size} x accumulation {accumulation} = {global_batch} ({source})")


# ---------------------------------------------------------------------------------------------
# `tune plan`: what a run will hold and take, per GPU, before anything loads (docs/plan.md)

DEFAULT_MFU = 0.35  # a stated assumption, not a measurement: docs/plan.md; benchmarks/gpu/plan_check.py measures


@dataclass(frozen=True)
class DataSize:
    """How much the run trains on: ``samples`` (training rows of the mixture) and/or ``tokens``, and
    in words where the figures came from."""

    samples: int | None
    tokens: int | None
    source: str


@dataclass(frozen=True)
class PlanReport:
    """`tune plan`'s figures for one recipe on one GPU model (``lines`` for people, ``to_dict`` for --json)."""

    recipe: str
    gpu: Gpu
    mfu: float
    nodes: int
    processes_per_node: int
    global_batch: int
    memory: TrainingMemory | None
    tokens_per_step: int
    tokens_per_step_exact: bool
    steps: int | None
    steps_source: str
    flops_per_token: float | None
    notes: tuple[str, ...]

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes_per_node

    @property
    def wall_seconds(self) -> float | None:
        if self.steps is None or self.flops_per_token is None:
            return None
        work = self.steps * self.tokens_per_step * self.flops_per_token
        return work / (self.world_size * self.gpu.bf16_flops * self.mfu)

    @property
    def fits(self) -> bool | None:
        return None if self.memory is None else self.memory.total <= self.gpu.memory_bytes * FIT_MARGIN

    def to_dict(self) -> dict:
        m = self.memory
        return {
            "recipe": self.recipe,
            "gpu": {"name": self.gpu.name, "bf16_flops": self.gpu.bf16_flops, "memory_bytes": self.gpu.memory_bytes,
                    "source": self.gpu.source},
            "mfu": self.mfu,
            "topology": {"nodes": self.nodes, "processes_per_node": self.processes_per_node,
                         "world_size": self.world_size, "global_batch": self.global_batch,
                         "strategy": m.strategy if m else None},
            "parameters": {"total": m.parameters, "trainable": m.trainable} if m else None,
            "memory_per_gpu": {**m.parts(), "total": m.total, "cpu_offloaded": m.cpu_bytes, "compute": m.compute} if m else None,
            "fits": self.fits,
            "fit_margin": FIT_MARGIN,
            "tokens_per_step": self.tokens_per_step,
            "tokens_per_step_exact": self.tokens_per_step_exact,
            "steps": self.steps,
            "steps_source": self.steps_source,
            "flops_per_token": self.flops_per_token,
            "wall_seconds": self.wall_seconds,
            "notes": list(self.notes),
        }

    def lines(self) -> list[str]:
        m, gib = self.memory, size_text
        out = [f"plan: {self.recipe} on {self.gpu.name} ({self.gpu.bf16_flops / 1e12:.0f} TFLOP/s dense bf16, "
               f"{self.gpu.memory_bytes / 1e9:.0f} GB; {self.gpu.source})"]
        strategy = m.strategy if m else "?"
        out.append(f"topology: {self.nodes} node(s) x {self.processes_per_node} process(es) = {self.world_size} GPUs, "
                   f"launch.strategy {strategy}; global batch {self.global_batch}")
        if m is None:
            out.append("memory: unknown until the model loads (architecture not known here)")
        else:
            out.append(f"parameters: {m.parameters:,} total, {m.trainable:,} trainable")
            names = {"weights": "weights", "compute_copy": "16-bit compute copy", "master_copy": "fp32 master copy",
                     "gradients": "gradients", "gathered_gradients": "unsharded gradients in flight",
                     "optimizer_states": "optimizer states",
                     "communication": "DDP gradient buckets", "reference": "DPO reference", "activations": "activations"}
            out.append(f"memory per GPU (compute: {m.compute}): " + ", ".join(
                f"{names[k]} {gib(v)}" for k, v in m.parts().items() if v) + f"; total {gib(m.total)}")
            if m.cpu_bytes:
                out.append(f"memory in host RAM per process (launch.cpu_offload): {gib(m.cpu_bytes)}")
            verdict = "fits" if self.fits else "does NOT fit"
            out.append(f"fit: {verdict} on one {self.gpu.name} ({gib(m.total)} of {self.gpu.memory_bytes / 1e9:.0f} GB, "
                       f"{FIT_MARGIN:.0%} usable for the plan)")
        bound = "" if self.tokens_per_step_exact else "at most "
        out.append(f"tokens per step: {bound}{self.tokens_per_step:,}")
        out.append(f"steps: {self.steps:,} ({self.steps_source})" if self.steps is not None
                   else f"steps: unknown ({self.steps_source})")
        seconds = self.wall_seconds
        if seconds is not None:
            bound = "" if self.tokens_per_step_exact else "at most "
            out.append(f"wall time: {bound}{_duration(seconds)} at MFU {self.mfu:.0%} on {self.world_size} x "
                       f"{self.gpu.name} ({self.flops_per_token / 1e9:.1f} GFLOP per token, model FLOPs)")
        out += [f"note: {note}" for note in self.notes]
        return out


def plan_report(loaded: LoadedRecipe, gpu: str = DEFAULT_GPU, *, mfu: float = DEFAULT_MFU,
                samples: int | None = None, tokens: int | None = None) -> PlanReport:
    """`tune plan`'s figures for ``loaded`` on ``gpu`` (a name of tune.models.gpus; UserError for an
    unknown one). ``samples`` / ``tokens`` (the command line's `--samples` / `--tokens`) give the
    training data's size when known; otherwise it comes from the data report of an earlier run of the
    same data in `output.dir` (recorded_data_size), else it is estimated from the dataset cards'
    `approx_rows` and the local files' rows (estimate_data_size); the report says which
    (docs/plan.md). ``mfu``: the model FLOPs utilisation the wall time assumes. No torch import."""
    from tune.models.flops import flops_per_token
    from tune.models.shapes import architecture_config
    from tune.models.training_memory import training_memory

    recipe = loaded.recipe
    device = gpu_named(gpu)
    if not 0 < mfu <= 1:
        raise UserError(f"MFU {mfu} is not a fraction in (0, 1]; give e.g. 0.35")
    if recipe.method.name == "cpt":  # windows of pre-tokenized corpora: tune.plan_cpt
        from tune.plan_cpt import cpt_plan_report

        return cpt_plan_report(loaded, device, mfu)
    launch, train, data = recipe.launch, recipe.train, recipe.data
    ranks = launch.nodes * launch.processes_per_node
    global_batch = ranks * train.per_device_batch_size * train.grad_accumulation
    rows_tokens = data.max_seq_len
    notes = []
    if samples or tokens:
        size = DataSize(samples, tokens, "from the command line")
    else:
        size = recorded_data_size(recipe) or estimate_data_size(recipe)
    exact = data.packing == "concat"
    tokens_per_step = global_batch * rows_tokens
    if data.packing == "none" and size.samples and size.tokens:
        tokens_per_step, exact = min(tokens_per_step, round(global_batch * size.tokens / size.samples)), False
    steps, steps_source = _steps(recipe, size, ranks)
    if recipe.method.name == "dpo":
        notes.append("DPO: each sample is a chosen and a rejected sequence (both trained), plus the reference's forward")
    config = architecture_config(recipe)
    per_token = None
    if config is not None:
        per_token = flops_per_token(config, rows_tokens, recipe.method.peft == "none")
        if recipe.method.name == "dpo":
            per_token *= 2 + 1 / 3  # chosen + rejected through the policy, one forward each through the reference
    memory = training_memory(recipe)
    if memory is not None:
        notes += memory.notes
        if memory.world_size > 1 and memory.strategy == "ddp" and recipe.method.peft == "none":
            notes.append("launch.strategy ddp keeps the whole model, its gradients and states on every GPU; "
                         "fsdp2 or deepspeed_zero3 divide them by the number of GPUs")
    return PlanReport(
        recipe=str(loaded.source_path), gpu=device, mfu=mfu, nodes=launch.nodes,
        processes_per_node=launch.processes_per_node, global_batch=global_batch, memory=memory,
        tokens_per_step=tokens_per_step, tokens_per_step_exact=exact, steps=steps, steps_source=steps_source,
        flops_per_token=per_token, notes=tuple(notes))


def _steps(recipe: Recipe, size: DataSize, ranks: int) -> tuple[int | None, str]:
    """Optimizer steps and how they were obtained: `train.max_steps`, or the data size over the
    global batch as transformers' Trainer counts them (each rank's batches, rounded up per epoch)."""
    train, data = recipe.train, recipe.data
    if train.max_steps:
        return train.max_steps, "train.max_steps"
    rows = size.samples
    how = f"{train.epochs:g} epoch(s) of "
    if data.packing == "concat":
        if size.tokens is None:
            return None, (f"packing: concat trains windows of {data.max_seq_len + 1} tokens; give the data's tokens "
                          "(--tokens N, from a data report) or set train.max_steps")
        rows = size.tokens // (data.max_seq_len + 1)
        how += f"{rows:,} windows of {data.max_seq_len + 1} tokens from {size.tokens:,} tokens {size.source}"
    elif data.packing == "isolated":
        if size.tokens is None:
            return None, ("packing: isolated fills rows with whole samples; give the data's tokens (--tokens N, "
                          "from a data report) or set train.max_steps")
        rows = -(-size.tokens // data.max_seq_len)
        how += f"at least {rows:,} packed rows from {size.tokens:,} tokens {size.source}"
    else:
        if rows is None:
            return None, f"{size.source}; give --samples N or set train.max_steps"
        how += f"{rows:,} samples {size.source}"
    per_rank = -(-rows // ranks)
    batches = -(-per_rank // train.per_device_batch_size)
    per_epoch = max(-(-batches // train.grad_accumulation), 1)
    return math.ceil(train.epochs * per_epoch), how


# `data` keys that do not change what is prepared (as tune.data.cache leaves them out of its key)
_NOT_SHAPING = ("cache", "num_proc")


def recorded_data_size(recipe: Recipe) -> DataSize | None:
    """The data report of an earlier run in `output.dir` (its `manifest.json`), when that run prepared the
    same data: the same `data` section (but `cache` / `num_proc`), model and seed in its `recipe.yaml`.
    None otherwise. With `packing: concat` the report's windows count, as tokens of whole windows."""
    import json
    from pathlib import Path

    import yaml

    folder = Path(recipe.output.dir)
    try:
        report = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["data"]["report"]
        recorded = yaml.safe_load((folder / "recipe.yaml").read_text(encoding="utf-8"))
        mine = recipe.model_dump(mode="json")
        same = all(recorded[key] == mine[key] for key in ("model",)) and recorded["train"]["seed"] == mine["train"]["seed"]
        same = same and {k: v for k, v in recorded["data"].items() if k not in _NOT_SHAPING} == {
            k: v for k, v in mine["data"].items() if k not in _NOT_SHAPING}
        datasets = report["datasets"]
        samples = sum(int(d["samples"]) for d in datasets)
        tokens = sum(int(d["tokens"]) for d in datasets)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return None
    if not same:
        return None
    if recipe.data.packing == "concat" and report.get("windows") is not None:
        tokens = int(report["windows"]) * (recipe.data.max_seq_len + 1)
    return DataSize(samples, tokens, f"from the data report of the earlier run in {folder} (manifest.json)")


def estimate_data_size(recipe: Recipe) -> DataSize:
    """The training samples of the mixture, estimated without reading or tokenizing any row: each
    dataset's rows (a card's `approx_rows`, the lines of a local `.jsonl`, a `.parquet`'s metadata,
    the lines of a card's bundled samples), capped by `max_rows`, less the eval split, times the
    weight (or the `share` of `mixture_size`). Duplicates, bad and over-long rows are not known
    before preparation, so the figure is an upper bound. Tokens are not estimated (None)."""
    data = recipe.data
    rows: list[int] = []
    weights: list[float] = []
    for entry in data.datasets:
        count, weight, why = _dataset_rows(entry)
        if count is None:
            return DataSize(None, None, f"the size of {why} is not known here")
        rows.append(min(count, entry.max_rows) if entry.max_rows else count)
        weights.append(entry.weight if entry.weight is not None else weight)
    if data.eval_split == "per_dataset":
        kept = [n - min(data.eval_max_rows, math.floor(data.eval_fraction * n)) for n in rows]
    else:
        held = min(data.eval_max_rows, round(data.eval_fraction * sum(rows)))
        kept = [n - held * n // max(sum(rows), 1) for n in rows]
    if data.datasets[0].share is not None:
        samples = data.mixture_size or sum(kept)
    else:
        samples = round(sum(n * w for n, w in zip(kept, weights)))
    return DataSize(samples, None, "estimated from the datasets' row counts (cards' approx_rows, files' rows; "
                                   "before dedup and dropped rows: an upper bound)")


def _dataset_rows(entry) -> tuple[int | None, float, str]:
    """(rows, the card's default weight, a name for messages) of one dataset entry, without reading rows."""
    from pathlib import Path

    if entry.card is None:
        return _file_rows(Path(entry.path)), 1.0, entry.path
    card = _card_yaml(entry.card)
    weight = float(card.get("default_weight") or 1)
    if entry.use == "samples":
        return _file_rows(shipped_cards_dir() / (card.get("samples") or f"{entry.card}.samples.jsonl")), weight, entry.card
    if entry.path is not None:
        return _file_rows(Path(entry.path)), weight, entry.path
    return card.get("approx_rows"), weight, f"card {entry.card} (approx_rows: null)"


def _card_yaml(name: str) -> dict:
    """The raw keys of dataset card ``name`` (validated when the recipe loaded; the plan room does not
    import tune.data, so it reads the two keys it needs from the file)."""
    import yaml

    try:
        return yaml.safe_load((shipped_cards_dir() / f"{name}.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}


def _file_rows(path) -> int | None:
    """Rows of a local `.jsonl` (its non-empty lines) or `.parquet` (its metadata), or a folder of them;
    None for other formats or a missing file."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in (".jsonl", ".parquet")) \
        if path.is_dir() else []
    if not files:
        return None
    total = 0
    for file in files:
        if file.suffix == ".jsonl":
            with open(file, "rb") as handle:
                total += sum(1 for line in handle if line.strip())
        elif file.suffix == ".parquet":
            try:
                import pyarrow.parquet as pq

                total += pq.ParquetFile(file).metadata.num_rows
            except Exception:
                return None
        else:
            return None
    return total


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
