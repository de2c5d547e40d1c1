"""Which Liger kernels a recipe gets, and which `model.liger: true` recipes cannot work: pure python.

`tune validate` calls ``liger_refusal`` (through tune.recipe, which reports it at `model.liger`) and
``liger_plan`` (through tune.plan) without importing torch; ``tune.models.liger_patch.apply_liger`` applies the same table to the
loaded model. One table, ``KERNELS``, says what each architecture gets from liger-kernel 0.8.5:

    LlamaForCausalLM     apply_liger_kernel_to_llama:     rms_norm, rope, swiglu (LigerSwiGLUMLP)
    Qwen3MoeForCausalLM  apply_liger_kernel_to_qwen3_moe: rms_norm (also q_norm/k_norm), rope, and
                         its `swiglu` switch, which on transformers 5 swaps the fused 3D experts for
                         LigerExperts (Liger's fused MoE kernel, LigerFusedMoEFunction)

Liger's fused linear cross entropy is deliberately left off. TRL 1.16's SFTTrainer and DPOTrainer
install their own fused LM head (``trl.trainer.utils.add_fused_lm_head``: chunked log-probs, the
full [tokens, vocab] logits never exist) and compute the loss, the MoE router aux loss, entropy and
token accuracy from the backbone's hidden states, never through ``model.forward``: Liger's
``lce_forward`` would sit in ``model.forward`` unused (TRL refuses ``fused_linear_cross_entropy`` in
its own Liger path for the same reason). The memory saving that kernel exists for is already there.

For the same reason nothing here depends on the DPO loss type or the router aux loss: TRL 1.16 does
not route DPO through Liger's fused preference losses, and the aux loss is added by TRL's head
(Liger's own Qwen3-MoE ``lce_forward`` would also add it; it is not used).

Refused at validation (``liger_refusal``, reported at `model.liger`), when the architecture is known here (a preset or
a local checkpoint's config.json; a hub id is checked when it loads):
    - an architecture Liger has no patch for in this table;
    - a Qwen3-MoE with dense layers (`mlp_only_layers`, `decoder_sparse_step` > 1): Liger's patch
      reaches for `mlp.experts` on every layer;
    - an activation other than silu (Liger's SwiGLU kernels compute silu only);
    - QLoRA on Qwen3-MoE: tune stores the fused experts in 4 bits (tune.models.quantized_experts),
      which Liger's fused MoE kernel would read as dense weights.
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
