"""The shapes of a Llama or Qwen3-MoE model, from its config keys alone (no torch, no weights).

Used by the LoRA target resolution (tune.models.adapters), the memory plan (tune.models.memory)
and the preset tests (published parameter counts). A config is a dict of config.json keys: a
preset's (tune.models.presets), or a local checkpoint's.
"""

from __future__ import annotations

from tune.config.schema import Recipe
from tune.models.presets import architecture_of

# The fused expert weights of a Qwen3-MoE layer, as peft's `target_parameters` names them.
EXPERT_PARAMETERS = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")


def architecture_config(recipe: Recipe) -> dict | None:
    """The config keys of the recipe's model: a preset's, a local checkpoint's config.json, else None."""
    return architecture_of(recipe.model.name, recipe.model.path)


def is_moe(config: dict) -> bool:
    """True for a Qwen3-MoE config (the only MoE architecture tune knows)."""
    return config.get("model_type") == "qwen3_moe"


def is_moe_layer(config: dict, index: int) -> bool:
    """True when decoder layer ``index`` of this MoE config has experts (not in `mlp_only_layers`, on the sparse step)."""
    step = config.get("decoder_sparse_step", 1) or 1
    return index not in config.get("mlp_only_layers", []) and (index + 1) % step == 0


def linear_shapes(config: dict, moe_layer: bool) -> dict[str, tuple[int, int]]:
    """(in, out) of each Linear of one decoder layer, by module name."""
    hidden, head_dim = config["hidden_size"], config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    q, kv = config["num_attention_heads"] * head_dim, config["num_key_value_heads"] * head_dim
    shapes = {"q_proj": (hidden, q), "k_proj": (hidden, kv), "v_proj": (hidden, kv), "o_proj": (q, hidden)}
    if moe_layer:
        shapes["gate"] = (hidden, config["num_experts"])
    else:
        inter = config["intermediate_size"]
        shapes.update({"gate_proj": (hidden, inter), "up_proj": (hidden, inter), "down_proj": (inter, hidden)})
    return shapes


def expert_shapes(config: dict) -> dict[str, tuple[int, int, int]]:
    """(experts, in, out) of the fused expert weights of one MoE layer."""
    experts, hidden, inter = config["num_experts"], config["hidden_size"], config["moe_intermediate_size"]
    return {EXPERT_PARAMETERS[0]: (experts, hidden, 2 * inter), EXPERT_PARAMETERS[1]: (experts, inter, hidden)}


def parameter_count(config: dict) -> int:
    """Parameters of a Llama or Qwen3-MoE model with these config keys (embeddings, layers, head)."""
    hidden, vocab = config["hidden_size"], config["vocab_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    total = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2) + hidden
    for index in range(config["num_hidden_layers"]):
        moe = is_moe(config) and is_moe_layer(config, index)
        total += sum(i * o for i, o in linear_shapes(config, moe).values()) + 2 * hidden
        if is_moe(config):
            total += 2 * head_dim  # q_norm, k_norm
        if moe:
            total += sum(e * i * o for e, i, o in expert_shapes(config).values())
    return total
