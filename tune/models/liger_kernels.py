"""Which Liger kernels a recipe gets, and which `model.liger: true` recipes cannot work: pure python.

`tune validate` calls ``liger_refusal`` (through tune.recipe, which reports it at `model.liger`) and
``liger_plan`` (through tune.plan) without importing torch; ``tune.models.liger_patch.apply_liger``
applies the same table, ``KERNELS`` (liger-kernel 0.8.5), to the loaded model:
    LlamaForCausalLM     rms_norm, rope, swiglu
    Qwen3MoeForCausalLM  rms_norm (q/k norms too), rope, fused MoE experts (LigerExperts)
Liger's fused linear cross entropy stays off: TRL 1.16's trainers compute the loss with their own
chunked fused LM head and never call ``model.forward`` (``LOSS_NOTE``).

``liger_refusal`` / ``config_problem`` refuse, when the architecture is known here (a preset or a
local config.json; a hub id is checked when it loads): an architecture not in ``KERNELS``, a
Qwen3-MoE with dense layers, an activation other than silu, and QLoRA on Qwen3-MoE (4-bit experts).

Why, with the loss decision and the reason for each refusal: docs/liger.md
"""

from __future__ import annotations

from tune.config.schema import Recipe
from tune.models.presets import architecture_of

KEY = "model.liger"

# architecture -> (liger-kernel function, the kernels it applies, as the plan names them)
KERNELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "LlamaForCausalLM": ("apply_liger_kernel_to_llama", ("rms_norm", "rope", "swiglu")),
    "Qwen3MoeForCausalLM": ("apply_liger_kernel_to_qwen3_moe", ("rms_norm", "rope", "fused MoE experts")),
}
LOSS_NOTE = ("loss: TRL's chunked fused LM head (no full logits); Liger's fused_linear_cross_entropy "
             "stays off, TRL 1.16's trainers bypass model.forward")


def config_problem(config: dict) -> str | None:
    """Why Liger cannot patch a model with these config.json keys, or None when it can."""
    architecture = (config.get("architectures") or [config.get("model_type", "unknown")])[0]
    if architecture not in KERNELS:
        return (f"Liger kernels are wired up only for {', '.join(KERNELS)}, and this model is a {architecture}; "
                "set model.liger=false")
    if config.get("hidden_act", "silu") not in ("silu", "swish"):
        return f"Liger's SwiGLU kernels compute silu only, and this model uses {config['hidden_act']}; set model.liger=false"
    if architecture == "Qwen3MoeForCausalLM" and (config.get("mlp_only_layers") or (config.get("decoder_sparse_step") or 1) > 1):
        return ("Liger's Qwen3-MoE patch expects every layer to be MoE, and this model has dense layers "
                "(mlp_only_layers / decoder_sparse_step); set model.liger=false")
    return None


def liger_refusal(recipe: Recipe) -> str | None:
    """Why Liger cannot serve this `model.liger: true` recipe (the fix for `KEY` included), or None
    when it can, when liger is off, or when the architecture is only known once the model loads."""
    if not recipe.model.liger:
        return None
    config = architecture_of(recipe.model.name, recipe.model.path)
    if config is None:
        return None
    what = config_problem(config)
    if what is None and recipe.method.peft == "qlora" and config.get("model_type") == "qwen3_moe":
        what = ("Liger's fused MoE kernel reads the expert weights as dense tensors, and QLoRA stores them in 4 bits "
                "(tune.models.quantized_experts, dequantized on use); set model.liger=false or method.peft=lora")
    return what


def liger_plan(recipe: Recipe) -> list[str]:
    """Plan lines: exactly which Liger kernels will be applied to which architecture (none when off)."""
    if not recipe.model.liger:
        return []
    config = architecture_of(recipe.model.name, recipe.model.path)
    if config is None:
        return [f"Liger: kernels chosen when the model loads (architecture of {recipe.model.name} unknown here); {LOSS_NOTE}"]
    problem = config_problem(config)
    if problem:
        return [f"Liger: cannot apply: {problem}"]
    architecture = config["architectures"][0]
    _, kernels = KERNELS[architecture]
    return [f"Liger: {', '.join(kernels)} on {architecture}; {LOSS_NOTE}"]
