"""Load a recipe's tokenizer and model from a local checkpoint folder.

The tokenizer always comes from the checkpoint (or `model.tokenizer`), built without remote code:
LLM-jp-4's published tokenizer names a custom class, but training only needs encoding and the
chat template, which a plain fast tokenizer provides (see tune.models.tokenizer_sentencepiece).
"""

from __future__ import annotations

from pathlib import Path

from tune.config.schema import Recipe
from tune.errors import UserError
from tune.models.checkpoints import Checkpoint


def resolve_dtype(name: str):
    """The torch dtype for a recipe `model.dtype`: `auto` is bf16 on CUDA, fp32 on CPU."""
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return getattr(torch, name)


def weights_dtype(recipe: Recipe):
    """The dtype the model's weights load in: fp32 for full fine-tuning with `train.master_weights: fp32`
    (the weights are the fp32 master copy; the compute runs in `train.precision`, tune.training.strategy),
    else `model.dtype` (resolve_dtype). The schema refuses a 16-bit `model.dtype` with fp32 masters."""
    import torch

    if recipe.method.peft == "none" and recipe.train.master_weights == "fp32":
        return torch.float32
    return resolve_dtype(recipe.model.dtype)


def load_tokenizer(recipe: Recipe, checkpoint: Checkpoint):
    """The fast tokenizer for the run, with its chat template; UserError if it has none."""
    from tune.models.tokenizer_sentencepiece import build_fast_tokenizer_from_assets

    folder = Path(recipe.model.tokenizer) if recipe.model.tokenizer else checkpoint.folder
    try:
        tokenizer = build_fast_tokenizer_from_assets(folder)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"model.tokenizer: cannot build a tokenizer from {folder}: {err}") from None
    if not tokenizer.chat_template:
        raise UserError(
            f"tokenizer at {folder} has no chat template (chat_template.jinja); "
            "data.template `chat` needs one: set model.tokenizer to a folder that has it"
        )
    return tokenizer


def load_model(recipe: Recipe, checkpoint: Checkpoint):
    """The causal LM in its training dtype (weights_dtype) and attention kernel, ready for training: 4-bit and
    prepared for k-bit training under `method.peft: qlora` (tune.models.quantization), with the
    recipe's MoE router settings, and with Liger's kernels when `model.liger` (tune.models.liger_patch)."""
    from transformers import AutoModelForCausalLM

    if recipe.model.liger:
        from tune.models.liger_patch import require_liger_device

        require_liger_device()  # before minutes of loading: no GPU, no Liger
    kwargs = {
        "dtype": weights_dtype(recipe),
        "attn_implementation": recipe.model.attn_implementation,
        "trust_remote_code": recipe.model.trust_remote_code,
        **router_overrides(recipe),
    }
    if recipe.method.peft == "qlora":
        from tune.models.quantization import load_quantized

        model = load_quantized(recipe, checkpoint, **kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(checkpoint.folder, **kwargs)
    if recipe.model.liger:
        from tune.models.liger_patch import apply_liger

        apply_liger(model, recipe)
    return model


def router_overrides(recipe: Recipe) -> dict:
    """Config overrides for the MoE router aux loss the recipe sets (none for a dense model's recipe)."""
    overrides = {}
    if recipe.model.router_aux_loss_coef is not None:
        overrides["router_aux_loss_coef"] = recipe.model.router_aux_loss_coef
    if recipe.model.output_router_logits is not None:
        overrides["output_router_logits"] = recipe.model.output_router_logits
    return overrides


def check_vocab_fits(model, tokenizer, source: str) -> None:
    """Refuse a tokenizer with ids the model's embedding has no row for."""
    if len(tokenizer) > model.config.vocab_size:
        raise UserError(
            f"model {source}: the tokenizer has {len(tokenizer)} tokens but the model's vocabulary only "
            f"{model.config.vocab_size}; set model.tokenizer to the checkpoint's own tokenizer"
        )
