"""`tune plan` for continued pre-training (`method.name: cpt`): tokens, steps, time on rt_HF nodes.

A cpt recipe trains windows of `data.max_seq_len` tokens drawn from pre-tokenized corpora
(`data.corpora`), so its size is exact, not estimated from rows:

    tokens per step   global batch x data.max_seq_len (every window is full: no padding, no packing)
    steps             train.max_steps, else the planned steps of the corpora's blend
                      (tune.data.corpus_blend.planned_steps over the token counts of their `.idx`)
    total tokens      steps x tokens per step (LLM-jp's CPT: 500 x 512 x 4,096 = 1,048,576,000)
    throughput        tokens/s per GPU at a stated MFU = MFU x peak bf16 FLOP/s / model FLOPs per token
                      (tune.models.flops, the count MFU is defined against; tune.models.gpus' peaks)
    time              total tokens / (nodes x GPUs per node x tokens/s per GPU), for the recipe's node
                      count and a few others; the tokens/s a stated wall clock needs

beside LLM-jp's own figure for the 8B, which is theirs and not a measurement of tune: "about 5 hours
to train 1B tokens of the 8B on 1 node (8 GPUs)" (llm-jp/ft-llm-2026 midtraining/README.md), i.e.
1e9 / (5 x 3600 x 8) = 6,944 tokens/s per GPU with Megatron-LM on ABCI 3.0's H200s.

Memory per GPU is the full fine-tuning estimate of tune.models.training_memory (it reads only
`data.max_seq_len` of the data section). No torch import; the corpora's `.idx` are read only when
`train.max_steps` is unset.
"""

from __future__ import annotations

from dataclasses import dataclass

from tune.config.loaded_recipe import LoadedRecipe
from tune.config.schema import Recipe
from tune.errors import UserError
from tune.models.gpus import GPUS, Gpu
from tune.plan import PlanReport

# llm-jp/ft-llm-2026 midtraining/README.md: "8B パラメータのモデルを 1 ノード（8 GPU）で 1B トークン学習するのに
# かかる時間は約5時間です" (about 5 hours for 1B tokens of the 8B on one 8-GPU node).
LLMJP_8B_HOURS_PER_1B_TOKENS = 5.0
LLMJP_8B_GPUS = 8
LLMJP_8B_SOURCE = "llm-jp/ft-llm-2026 midtraining/README.md (Megatron-LM, one ABCI 3.0 rt_HF node)"
LLMJP_8B_MODELS = ("llm-jp-4-8b",)
# The wall clock the "tokens/s needed" line is stated for: ft-llm-2026's job limit (run_train.sh WALLTIME=24:00:00).
DEFAULT_TARGET_HOURS = 24.0
NODE_COUNTS = (1, 2, 4, 8)


def llmjp_tokens_per_gpu_second() -> float:
    """LLM-jp's reported CPT speed of the 8B, in tokens/s per GPU (their figure: module docstring)."""
    return 1e9 / (LLMJP_8B_HOURS_PER_1B_TOKENS * 3600 * LLMJP_8B_GPUS)


@dataclass(frozen=True)
class CorpusSteps:
    """Optimizer steps of a cpt run and, in words, where they came from (None: unknown, say why)."""

    steps: int | None
    source: str


def cpt_steps(recipe: Recipe) -> CorpusSteps:
    """`train.max_steps` when set; else tune.data.corpus_blend.planned_steps over the corpora's token
    counts read from their `.idx` headers (tune.data.corpus_index). When those cannot be had here (the
    corpora live on the cluster, or that code is not installed), the steps are unknown and the source
    says to set `train.max_steps`."""
    if recipe.train.max_steps:
        return CorpusSteps(recipe.train.max_steps, "train.max_steps")
    try:
        from tune.data.corpus_blend import planned_steps
        from tune.data.corpus_index import corpus_token_counts
    except ImportError:
        return CorpusSteps(None, "set train.max_steps (the corpora's sizes are not read by this install)")
    try:
        counts = corpus_token_counts(recipe)
        steps = planned_steps(recipe, counts)
    except (UserError, OSError, ValueError) as error:  # a missing or foreign .idx: the message says which
        return CorpusSteps(None, f"set train.max_steps, or make the corpora readable here ({error})")
    return CorpusSteps(steps, f"{recipe.train.epochs:g} epoch(s) of the corpora's blend "
                              f"({sum(counts):,} tokens in their .idx, before repeats)")


@dataclass(frozen=True)
class CptFigures:
    """The cpt-only part of a plan: totals, the throughput an MFU means, times on node counts.

    ``tokens_per_gpu_s`` is None when the architecture (hence FLOPs per token) is unknown."""

    total_tokens: int | None
    tokens_per_gpu_s: float | None
    gpus_per_node: int
    target_hours: float
    llmjp_reference: bool

    def hours_on(self, nodes: int, tokens_per_gpu_s: float | None = None) -> float | None:
        """Hours to train ``total_tokens`` on ``nodes`` nodes at ``tokens_per_gpu_s`` (default: the MFU's)."""
        speed = tokens_per_gpu_s or self.tokens_per_gpu_s
        if self.total_tokens is None or not speed:
            return None
        return self.total_tokens / (nodes * self.gpus_per_node * speed) / 3600

    def needed_tokens_per_s(self) -> float | None:
        """Tokens/s the whole job needs to train ``total_tokens`` within ``target_hours``."""
        return None if self.total_tokens is None else self.total_tokens / (self.target_hours * 3600)


def cpt_figures(recipe: Recipe, gpu: Gpu, mfu: float, steps: int | None, tokens_per_step: int,
                flops_per_token: float | None, target_hours: float = DEFAULT_TARGET_HOURS) -> CptFigures:
    """The figures of ``CptFigures`` for ``recipe`` on ``gpu`` at ``mfu``."""
    return CptFigures(
        total_tokens=None if steps is None else steps * tokens_per_step,
        tokens_per_gpu_s=None if not flops_per_token else mfu * gpu.bf16_flops / flops_per_token,
        gpus_per_node=recipe.launch.processes_per_node,
        target_hours=target_hours,
        llmjp_reference=recipe.model.name in LLMJP_8B_MODELS,
    )


def cpt_plan_lines(figures: CptFigures, gpu: Gpu, mfu: float, nodes: int, flops_per_token: float | None) -> list[str]:
    """The lines `tune plan` adds for a cpt recipe (after tokens per step and steps)."""
    out: list[str] = []
    total = figures.total_tokens
    if total is None:
        return ["total tokens: unknown until the steps are (set train.max_steps)"]
    out.append(f"total tokens: {total:,} ({total:.3g})")
    gpn = figures.gpus_per_node
    node_name = f"nodes of {gpn} x {gpu.name}" + (" (ABCI 3.0 rt_HF)" if gpu.name == "H200" and gpn == 8 else "")
    if figures.tokens_per_gpu_s is not None:
        out.append(f"throughput at MFU {mfu:.0%}: {figures.tokens_per_gpu_s:,.0f} tokens/s per {gpu.name} "
                   f"({gpu.bf16_flops / 1e12:.0f} TFLOP/s x {mfu:.2f} / {_flops_text(flops_per_token)} per token)")
        counts = sorted(set(NODE_COUNTS) | {nodes})
        times = ", ".join(f"{n} node{'s' if n > 1 else ''} {_hours_text(figures.hours_on(n))}"
                          + (" (this recipe)" if n == nodes else "")
                          for n in counts)
        out.append(f"time at MFU {mfu:.0%} on {node_name}: {times}")
    needed = figures.needed_tokens_per_s()
    out.append(f"to finish in {figures.target_hours:g} h: {needed:,.0f} tokens/s for the job, "
               f"{needed / (nodes * gpn):,.0f} per GPU on {nodes} x {gpn}")
    if figures.llmjp_reference:
        theirs = llmjp_tokens_per_gpu_second()
        implied = "" if not flops_per_token else (  # their GPUs: ABCI 3.0's H200
            f", MFU {theirs * flops_per_token / GPUS['H200'].bf16_flops:.0%} on H200 by the count above")
        out.append(f"LLM-jp's figure (theirs, not measured by tune): ~{LLMJP_8B_HOURS_PER_1B_TOKENS:g} h per 1B tokens of "
                   f"the 8B on one 8-GPU node, {LLMJP_8B_SOURCE}: ~{theirs:,.0f} tokens/s per GPU{implied}; "
                   f"this run at their speed: {_hours_text(figures.hours_on(1, theirs))} on 1 node, "
                   f"{_hours_text(figures.hours_on(nodes, theirs))} on {nodes}")
    return out


def cpt_plan_report(loaded: LoadedRecipe, gpu: Gpu, mfu: float,
                    target_hours: float = DEFAULT_TARGET_HOURS) -> "CptPlanReport":
    """`tune plan`'s report of a cpt recipe (a tune.plan.PlanReport whose ``lines`` and ``to_dict``
    add the figures of ``CptFigures``). Called by tune.plan.plan_report for `method.name: cpt`."""
    from tune.models.flops import flops_per_token
    from tune.models.shapes import architecture_config
    from tune.models.training_memory import training_memory

    recipe = loaded.recipe
    launch, train, data = recipe.launch, recipe.train, recipe.data
    global_batch = launch.nodes * launch.processes_per_node * train.per_device_batch_size * train.grad_accumulation
    tokens_per_step = global_batch * data.max_seq_len
    planned = cpt_steps(recipe)
    config = architecture_config(recipe)
    per_token = None if config is None else flops_per_token(config, data.max_seq_len, recipe.method.peft == "none")
    memory = training_memory(recipe)
    notes = list(memory.notes) if memory is not None else []
    if memory is not None and memory.world_size > 1 and memory.strategy == "ddp" and recipe.method.peft == "none":
        notes.append("launch.strategy ddp keeps the whole model, its gradients and states on every GPU; "
                     "fsdp2 or deepspeed_zero3 divide them by the number of GPUs")
    figures = cpt_figures(recipe, gpu, mfu, planned.steps, tokens_per_step, per_token, target_hours)
    return CptPlanReport(
        recipe=str(loaded.source_path), gpu=gpu, mfu=mfu, nodes=launch.nodes,
        processes_per_node=launch.processes_per_node, global_batch=global_batch, memory=memory,
        tokens_per_step=tokens_per_step, tokens_per_step_exact=True, steps=planned.steps,
        steps_source=planned.source, flops_per_token=per_token, notes=tuple(notes), cpt=figures)


@dataclass(frozen=True)
class CptPlanReport(PlanReport):
    """A PlanReport with the cpt figures (``cpt``) in its lines and its JSON."""

    cpt: CptFigures

    def lines(self) -> list[str]:
        out = super().lines()
        at = next(i for i, line in enumerate(out) if line.startswith("steps: ")) + 1
        out[at:at] = cpt_plan_lines(self.cpt, self.gpu, self.mfu, self.nodes, self.flops_per_token)
        tokens = next(i for i, line in enumerate(out) if line.startswith("tokens per step: "))
        out[tokens] += f" (global batch {self.global_batch:,} x data.max_seq_len {self.tokens_per_step // self.global_batch:,})"
        return out

    def to_dict(self) -> dict:
        figures = self.cpt
        return {**super().to_dict(), "cpt": {
            "total_tokens": figures.total_tokens,
            "tokens_per_gpu_s": figures.tokens_per_gpu_s,
            "gpus_per_node": figures.gpus_per_node,
            "hours_by_nodes": {n: figures.hours_on(n) for n in sorted(set(NODE_COUNTS) | {self.nodes})},
            "target_hours": figures.target_hours,
            "needed_tokens_per_s": figures.needed_tokens_per_s(),
            "llmjp_tokens_per_gpu_s": llmjp_tokens_per_gpu_second() if figures.llmjp_reference else None,
        }}


def _hours_text(hours: float | None) -> str:
    if hours is None:
        return "?"
    if hours >= 48:
        return f"{hours / 24:.1f} days"
    if hours >= 2:
        return f"{hours:.1f} h"
    if hours >= 2 / 60:
        return f"{hours * 60:.0f} min"
    return f"{hours * 3600:.1f} s"


def _flops_text(flops: float) -> str:
    return f"{flops / 1e9:.1f} GFLOP" if flops >= 1e8 else f"{flops / 1e6:.2f} MFLOP"
