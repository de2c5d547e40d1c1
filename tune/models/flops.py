"""Model FLOPs per trained token of a Llama or Qwen3-MoE architecture, from its config keys (no torch).

The count is the one model FLOPs utilisation (MFU) is defined against (PaLM, appendix B): a
matmul of an n-parameter weight costs 2n FLOPs per token forward and 4n backward (gradients of
the input and of the weight); recomputation under gradient checkpointing is not counted (it is
work the hardware does beyond the model's). Per token:

    full fine-tuning   6 x active matmul parameters + 6 x layers x q x sequence (causal attention:
                       QK^T and AV, 4 x q x sequence forward, halved by the mask, times 3)
    LoRA / QLoRA       4 x active matmul parameters (the frozen weights' gradients are never
                       formed; the adapters' own FLOPs are below 1%) + the same attention term

Active matmul parameters: every Linear of every layer and the output head; on a MoE layer the
router and the `num_experts_per_tok` experts a token is routed to (not all of them). The
embedding lookup is no matmul.
"""

from __future__ import annotations

from tune.models.shapes import expert_shapes, is_moe, is_moe_layer, linear_shapes


def active_matmul_params(config: dict) -> int:
    """Matmul parameters one token goes through (module docstring)."""
    hidden, vocab = config["hidden_size"], config["vocab_size"]
    total = vocab * hidden
    for index in range(config["num_hidden_layers"]):
        moe_layer = is_moe(config) and is_moe_layer(config, index)
        total += sum(i * o for i, o in linear_shapes(config, moe_layer).values())
        if moe_layer:
            per_expert = sum(i * o for _, i, o in expert_shapes(config).values())
            total += config["num_experts_per_tok"] * per_expert
    return total


def flops_per_token(config: dict, sequence: int, full: bool) -> float:
    """Model FLOPs to train one token at ``sequence`` tokens per row (module docstring)."""
    hidden = config["hidden_size"]
    q = config["num_attention_heads"] * (config.get("head_dim") or hidden // config["num_attention_heads"])
    attention = 6 * config["num_hidden_layers"] * q * sequence
    return (6 if full else 4) * active_matmul_params(config) + attention
