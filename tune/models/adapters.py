"""LoRA targets and parameter counts, resolved from the architecture without loading weights.

`tune validate` prints what LoRA will adapt and how many parameters will train, instantly: the
preset's config (or a local checkpoint's config.json) is enough. The same resolution builds the
peft LoraConfig at run time, and ``check_adapted`` compares the promise with the wrapped model.

Targets per architecture (`method.lora.targets: all-linear`):
    Llama (8B):      q_proj k_proj v_proj o_proj gate_proj up_proj down_proj
    Qwen3-MoE:       q_proj k_proj v_proj o_proj, plus the experts' fused weights through peft
                     `target_parameters` (mlp.experts.gate_up_proj, mlp.experts.down_proj) unless
                     `experts: false`, plus the router (mlp.gate) only with `router: true`.
A LoRA of rank r on a Linear in->out adds r x (in + out) parameters; on a fused expert weight
[E, out, in] peft stacks one pair per expert: r x E x (in + out) (shapes: tune.models.shapes).

Variants, peft's own flags: `method.lora.dora` (peft `use_dora`) adds one magnitude per output
feature of each adapted Linear (out more parameters; 4-bit Linear layers included). peft 0.21
refuses DoRA on what it adapts as a parameter (``lora.ParamWrapper``): the fused experts
(`target_parameters`) and, on transformers 5, the Qwen3-MoE router (no longer an nn.Linear, so
peft rewrites the `gate` target into a parameter target); both are refused here, at validation.
`method.lora.rslora` (peft `use_rslora`) only changes the scale (alpha/sqrt(r)): no refusal,
no extra parameter.

Pure python at import time (no torch): peft is imported only to build the config.
"""

from __future__ import annotations

from dataclasses import dataclass

from tune.config.problems import closest
from tune.config.schema import Recipe
from tune.errors import UserError
from tune.models.shapes import (
    EXPERT_PARAMETERS,
    architecture_config,
    expert_shapes,
    is_moe,
    is_moe_layer,
    linear_shapes,
    parameter_count,
)


class LoraTargetError(UserError):
    """A LoRA setting the architecture cannot serve; ``key`` is the recipe key to fix."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key, self.what = key, message


@dataclass(frozen=True)
class LoraTargets:
    """What LoRA adapts: module name suffixes, fused parameters, and the resulting counts."""

    modules: tuple[str, ...]
    parameters: tuple[str, ...]
    trainable: int
    total: int


def resolve_lora_targets(recipe: Recipe) -> LoraTargets | None:
    """The LoRA targets and counts of a lora/qlora recipe (None without LoRA or a known architecture).

    Raises LoraTargetError (a UserError) naming `method.lora.*` for experts or router on a dense
    model, a target that matches no module of the architecture, a list naming MoE expert
    projections or the router, dropout with adapted experts (peft refuses it at wrap time), and
    DoRA with adapted experts or router (`method.lora.dora`; peft refuses it at wrap time).
    """
    lora = recipe.method.lora
    config = architecture_config(recipe)
    if lora is None or config is None:
        return None
    moe = is_moe(config)
    if not moe and (lora.experts or lora.router):
        key = "experts" if lora.experts else "router"
        raise LoraTargetError(f"method.lora.{key}", f"{recipe.model.name} is a dense model with no MoE {key}; drop it")
    available = set()
    for index in range(config["num_hidden_layers"]):
        available |= set(linear_shapes(config, moe and is_moe_layer(config, index)))
    if lora.targets == "all-linear":
        modules = tuple(name for name in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
                        if name in available)
    else:
        modules = tuple(lora.targets)
        for name in modules:
            if moe and name in ("gate_proj", "up_proj", "down_proj"):
                raise LoraTargetError("method.lora.targets", f"{name!r} is an expert projection of this MoE model; "
                                      "experts are adapted with method.lora.experts: true")
            if name not in available:
                close = closest(name, sorted(available))
                hint = f" (did you mean '{close}'?)" if close else ""
                raise LoraTargetError("method.lora.targets", f"{name!r} matches no module of {recipe.model.name}; "
                                      f"expected some of: {', '.join(sorted(available))}{hint}")
    if moe and lora.router and "gate" not in modules:
        modules += ("gate",)
    if moe and lora.router is False and "gate" in modules:
        raise LoraTargetError("method.lora.targets", "'gate' is the MoE router; adapt it with method.lora.router: true")
    parameters = EXPERT_PARAMETERS if moe and lora.experts is not False else ()
    if parameters and lora.dropout:
        raise LoraTargetError("method.lora.dropout", f"{lora.dropout:g} with adapted MoE experts: peft applies no dropout "
                              "to fused expert weights (target_parameters); set method.lora.dropout: 0 or method.lora.experts: false")
    if lora.dora and parameters:
        raise LoraTargetError("method.lora.dora", "peft gives DoRA to Linear layers only, not to the fused MoE experts "
                              "(target_parameters); set method.lora.experts: false (DoRA on attention) or drop method.lora.dora")
    if lora.dora and moe and "gate" in modules:
        raise LoraTargetError("method.lora.dora", "peft cannot give DoRA to the MoE router (adapted as a parameter, "
                              "not a Linear); set method.lora.router: false or drop method.lora.dora")
    trainable = _trainable(config, modules, parameters, lora.r, lora.dora)
    return LoraTargets(modules, parameters, trainable, parameter_count(config))


def _trainable(config: dict, modules: tuple[str, ...], parameters: tuple[str, ...], rank: int, dora: bool = False) -> int:
    """Parameters LoRA adds: r x (in + out) per adapted Linear (+ out with DoRA's magnitude), r x E x (in + out)
    per fused expert weight."""
    count = 0
    for index in range(config["num_hidden_layers"]):
        moe_layer = is_moe(config) and is_moe_layer(config, index)
        shapes = linear_shapes(config, moe_layer)
        count += sum(rank * (shapes[m][0] + shapes[m][1]) + (shapes[m][1] if dora else 0) for m in modules if m in shapes)
        if moe_layer:
            count += sum(rank * e * (i + o) for name, (e, i, o) in expert_shapes(config).items() if name in parameters)
    return count


def lora_config(recipe: Recipe):
    """The peft LoraConfig for a lora/qlora recipe (None for full fine-tuning): rank, alpha, dropout,
    the resolved targets, and `dora` / `rslora` as peft's `use_dora` / `use_rslora`."""
    if recipe.method.peft == "none":
        return None
    from peft import LoraConfig

    lora = recipe.method.lora
    targets = resolve_lora_targets(recipe)
    modules = list(targets.modules) if targets else lora.targets
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=modules,
        target_parameters=list(targets.parameters) if targets and targets.parameters else None,
        use_dora=lora.dora,
        use_rslora=lora.rslora,
        task_type="CAUSAL_LM",
        bias="none",
    )


def check_adapted(model, recipe: Recipe) -> int:
    """The trainable parameter count of the wrapped ``model``; UserError when experts were asked
    for and none was adapted (peft skipping fused experts would otherwise pass unnoticed)."""
    trainable = {name: p.numel() for name, p in model.named_parameters() if p.requires_grad}
    targets = resolve_lora_targets(recipe)
    if targets and targets.parameters and not any(".mlp.experts." in name for name in trainable):
        raise UserError("method.lora.experts: no expert weight received an adapter; this transformers/peft "
                        "version does not reach the fused experts, so set method.lora.experts: false")
    return sum(trainable.values())


def lora_plan(recipe: Recipe) -> list[str]:
    """Lines for `tune validate`: resolved LoRA targets, the trainable parameter count (DoRA's
    magnitudes included) and, when set, the variant (DoRA, rsLoRA and its scale)."""
    if recipe.method.peft == "none":
        return []
    lora = recipe.method.lora
    variants = (["DoRA"] if lora.dora else []) + ([f"rsLoRA (scale alpha/sqrt(r) = {lora.alpha / lora.r ** 0.5:g})"]
                                                  if lora.rslora else [])
    variant = [f"LoRA variant: {', '.join(variants)}"] if variants else []
    targets = resolve_lora_targets(recipe)
    if targets is None:
        return [f"LoRA targets: {lora.targets} (resolved when the model loads: architecture unknown here)", *variant]
    parts = ", ".join(targets.modules) + ("; experts: " + ", ".join(targets.parameters) if targets.parameters else "")
    share = targets.trainable / targets.total
    return [f"LoRA targets: {parts}",
            f"trainable parameters: {targets.trainable:,} of {targets.total:,} ({share:.3%})", *variant]
