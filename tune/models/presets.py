"""Model presets: the LLM-jp-4 checkpoints and their tiny twins, as plain data.

One place per fact: a model's shape lives here and nowhere else. The real presets copy the
architecture LLM-jp published (model cards and config.json, summarised in
``shared/docs/llmjp4.md``); ``tests/models/test_presets.py`` rebuilds them on the meta device
and checks the published parameter counts (8,590,200,832 and 32,139,028,992).

A tiny twin has the same model class, the same config keys and the same special-token ids as
its real model, scaled down so that it trains on a laptop CPU in seconds. Every Linear output
width of a twin is a multiple of 32 (bitsandbytes' CPU 4-bit repack asserts on other widths).

This module is pure data (no torch import): ``tune validate`` resolves presets instantly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tune.config.problems import close_matches

# Special token ids shared by LLM-jp-4 and its twins (llm-jp-tokenizer v4.0).
BOS_ID, EOS_ID, PAD_ID = 1, 2, 4
TINY_VOCAB_SIZE = 4096

_LLAMA_8B = {
    "initializer_range": 0.02,
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 196608,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-6,
    "rope_theta": 500000.0,
    "max_position_embeddings": 65536,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "mlp_bias": False,
    "bos_token_id": BOS_ID,
    "eos_token_id": EOS_ID,
    "pad_token_id": PAD_ID,
}

_QWEN3_MOE_32B_A3B = {
    "architectures": ["Qwen3MoeForCausalLM"],
    "model_type": "qwen3_moe",
    "vocab_size": 196608,
    "hidden_size": 2560,
    "num_hidden_layers": 32,
    "num_attention_heads": 40,
    "num_key_value_heads": 4,
    "head_dim": 128,
    "hidden_act": "silu",
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "moe_intermediate_size": 960,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "norm_topk_prob": True,
    "router_aux_loss_coef": 0.01,
    "output_router_logits": False,
    "rms_norm_eps": 1e-6,
    "rope_theta": 500000.0,
    "max_position_embeddings": 65536,
    "initializer_range": 0.006,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "bos_token_id": BOS_ID,
    "eos_token_id": EOS_ID,
    "pad_token_id": PAD_ID,
}


@dataclass(frozen=True)
class Preset:
    """A named model: its architecture (config.json keys) and where its weights come from.

    ``hub_ids`` maps a variant (base / instruct / thinking) to a Hugging Face id; a tiny twin has
    none and is built locally from ``config`` with random weights drawn from ``seed``.
    """

    name: str
    description: str
    config: dict
    hub_ids: dict[str, str] = field(default_factory=dict)
    default_variant: str | None = None
    twin_of: str | None = None
    seed: int = 0

    @property
    def is_tiny(self) -> bool:
        return self.twin_of is not None

    @property
    def architecture(self) -> str:
        return self.config["architectures"][0]

    def hub_id(self, variant: str | None) -> str:
        """The hub id of ``variant`` (or of the default variant); KeyError for an unknown variant."""
        return self.hub_ids[variant or self.default_variant]


def _twin(real: dict, **scaled) -> dict:
    """Copy a real config and overwrite the size keys, so the twin keeps every other key.

    A twin scales ``initializer_range`` by sqrt(real hidden / twin hidden) so that weights keep
    the real model's std x sqrt(fan-in), i.e. the same activation and logit scale. With the real
    0.02 on hidden 128, the largest logit a frozen random output head allows is about
    0.02 x 128 = 2.6, so LoRA could never push the loss below ~ln(vocab) - 2.6.
    """
    config = dict(real)
    config.update(scaled)
    return config


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            name="llm-jp-4-8b",
            description="LLM-jp-4 8B, dense Llama architecture (32 layers, hidden 4096, GQA 32/8).",
            config=_LLAMA_8B,
            hub_ids={
                "base": "llm-jp/llm-jp-4-8b-base",
                "instruct": "llm-jp/llm-jp-4-8b-instruct",
                "thinking": "llm-jp/llm-jp-4-8b-thinking",
            },
            default_variant="base",
        ),
        Preset(
            name="llm-jp-4-32b-a3b",
            description="LLM-jp-4 32B-A3B, Qwen3-MoE architecture (128 experts, 8 active).",
            config=_QWEN3_MOE_32B_A3B,
            hub_ids={
                "base": "llm-jp/llm-jp-4-32b-a3b-base",
                "thinking": "llm-jp/llm-jp-4-32b-a3b-thinking",
            },
            default_variant="base",
        ),
        Preset(
            name="tiny-llm-jp-4-8b",
            description="Tiny random twin of LLM-jp-4 8B (LlamaForCausalLM, 2 layers, hidden 128).",
            config=_twin(
                _LLAMA_8B,
                vocab_size=TINY_VOCAB_SIZE,
                hidden_size=128,
                intermediate_size=448,  # 3.5 x hidden, as 14336 / 4096
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=1,  # 4:1 grouping, as 32:8
                head_dim=32,
                max_position_embeddings=4096,
                initializer_range=0.113,  # 0.02 x sqrt(4096 / 128): see _twin's docstring
            ),
            twin_of="llm-jp-4-8b",
            seed=1234,
        ),
        Preset(
            name="tiny-llm-jp-4-32b-a3b",
            description="Tiny random twin of LLM-jp-4 32B-A3B (Qwen3MoeForCausalLM, 2 layers, 8 experts, top-2).",
            config=_twin(
                _QWEN3_MOE_32B_A3B,
                vocab_size=TINY_VOCAB_SIZE,
                hidden_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                head_dim=32,  # q width 128 = 2 x hidden, as 5120 = 2 x 2560
                num_experts=8,
                num_experts_per_tok=2,
                moe_intermediate_size=64,
                max_position_embeddings=4096,
                initializer_range=0.038,  # 0.006 x sqrt(2560 / 64): see _twin's docstring
            ),
            twin_of="llm-jp-4-32b-a3b",
            seed=1234,
        ),
    ]
}


def architecture_of(name: str, path: str | None = None) -> dict | None:
    """The config keys of model ``name``: a preset's, else the config.json of the local folder
    ``path`` or ``name``; None when neither is known here (a hub id: resolved when it loads)."""
    preset = get_preset(name)
    if preset is not None:
        return preset.config
    import json
    from pathlib import Path

    for folder in (path, name):
        if isinstance(folder, str) and (Path(folder) / "config.json").is_file():
            return json.loads((Path(folder) / "config.json").read_text())
    return None


def get_preset(name: str) -> Preset | None:
    """The preset called ``name``, or None when no preset has that name."""
    return PRESETS.get(name)


def close_preset_names(name: str) -> list[str]:
    """Preset names that look like ``name`` (for "did you mean" suggestions)."""
    return close_matches(name, PRESETS, n=3)
