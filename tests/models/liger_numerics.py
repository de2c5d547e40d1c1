"""Liger vs plain transformers on one batch: loss, logits and gradients, full and LoRA (a script).

    python tests/models/liger_numerics.py tiny-llm-jp-4-8b OUT.json               # CPU, Triton interpreter
    python tests/models/liger_numerics.py llm-jp-4-8b OUT.json --device cuda --layers 2 --dtype bfloat16

Run in its own process: Liger patches module globals (``apply_rotary_pos_emb``, the norm / MLP /
experts classes), so every model of the class built later in the process runs Liger. The order is
therefore: every reference (unpatched) forward/backward first, then the Liger ones.

For each of `full` (every weight trains) and `lora` (tune's own LoRA targets: on Qwen3-MoE the
fused experts through peft `target_parameters`), the script builds the reference model and the
Liger model with the same weights (adapters copied from the reference, with lora_B drawn non-zero so
that lora_A gets a gradient too), runs the batch through TRL's fused LM head exactly as the trainers
do (``add_fused_lm_head``, ``fused_lm_head=True``; on MoE the router aux loss is part of the loss),
backpropagates, and writes losses, the largest gradient differences and which Liger modules ran.
Twins load through tune.models.loading.load_model (the production path, `model.liger` on/off);
real presets (``--layers N``) are built from the preset config with N layers and random weights,
and the Liger twin is a deep copy patched by tune.models.liger_patch.apply_liger.

Under ``TRITON_INTERPRET=1`` (CPU), ``apply_interpreter_shim`` closes two gaps of Triton 3.9's
interpreter that Liger's kernels hit (TEST-ONLY; nothing in tune uses it):
    - a Python float kernel argument (``eps``) stays a float, and Liger calls ``eps.to(...)``:
      the shim passes floats as fp32 scalars, as compiled Triton does;
    - ``triton.language.extra.libdevice.rsqrt`` (imported by Liger's RMSNorm) is a stub that returns
      None when interpreted: the shim points Liger's RMSNorm at ``tl.math.rsqrt``, which the
      interpreter runs (looked up at call time: the interpreter patches tl.math only during a launch).
tests/models/test_liger.py pins both gaps, so we learn when Triton closes them.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LIGER_FUSED_MOE_AUTOTUNE", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def apply_interpreter_shim() -> None:
    """Close the two interpreter gaps of the module docstring (call only under TRITON_INTERPRET=1)."""
    import numpy as np
    import triton.language as tl
    from triton.runtime import interpreter

    original = interpreter._implicit_cvt

    def implicit_cvt(arg):
        if isinstance(arg, float):
            return tl.tensor(interpreter.TensorHandle(np.array([arg], dtype=np.float32), tl.float32), tl.float32)
        return original(arg)

    interpreter._implicit_cvt = implicit_cvt
    import liger_kernel.ops.rms_norm as rms_norm

    rms_norm.rsqrt = lambda x: tl.math.rsqrt(x)  # looked up while the interpreter has tl.math patched


def count_kernel_calls():
    """Count calls into Liger's kernels from here on (a Counter by kernel), by wrapping the names
    Liger's modules call them through: proof that the patched model really runs them."""
    import collections
    import types

    import liger_kernel.transformers.rms_norm as rms_norm
    import liger_kernel.transformers.rope as rope
    import liger_kernel.transformers.swiglu as swiglu

    calls = collections.Counter()

    def counting(kernel, fn):
        def wrapper(*args, **kwargs):
            calls[kernel] += 1
            return fn(*args, **kwargs)
        return wrapper

    for module, name, kernel in ((rms_norm, "LigerRMSNormFunction", "rms_norm"),
                                 (swiglu, "LigerSiLUMulFunction", "swiglu"),
                                 (swiglu, "LigerFusedMoEFunction", "fused_moe_experts")):
        original = getattr(module, name)
        setattr(module, name, types.SimpleNamespace(apply=counting(kernel, original.apply)))
    rope.dispatch = counting("rope", rope.dispatch)
    return calls


def make_batch(vocab: int, device: str):
    """Two rows of 24 tokens: the first with a 6-token prompt (labels -100), the second padded at the end."""
    import torch

    generator = torch.Generator().manual_seed(7)
    ids = torch.randint(16, vocab, (2, 24), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 17:] = 0
    labels = ids.clone()
    labels[0, :6] = -100
    labels[1, 17:] = -100
    ids[1, 17:] = 4  # pad id
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def recipe_for(preset: str, peft: str, liger: bool):
    from tune.recipe import load_recipe

    overrides = [f"model.name={preset}", f"model.liger={str(liger).lower()}", "output.dir=/tmp/liger-numerics-unused"]
    return load_recipe("tiny/sft-lora" if peft == "lora" else "tiny/sft-full", overrides).recipe


def build_model(recipe, args, reference=None):
    """The model for ``recipe``: a twin through load_model, or a few-layer real preset (random
    weights; with ``reference`` a deep copy of it, patched by apply_liger when the recipe says so)."""
    import torch

    if args.layers is None:
        from tune.models.checkpoints import locate_checkpoint
        from tune.models.loading import load_model

        model = load_model(recipe, locate_checkpoint(recipe.model))
    elif reference is None:
        from transformers import AutoConfig, AutoModelForCausalLM

        from tune.models.loading import router_overrides
        from tune.models.presets import get_preset

        config_keys = {**get_preset(args.preset).config, "num_hidden_layers": args.layers, **router_overrides(recipe)}
        config = AutoConfig.for_model(**{k: v for k, v in config_keys.items() if k != "architectures"})
        config.architectures = get_preset(args.preset).config["architectures"]
        torch.manual_seed(0)
        with torch.device(args.device):  # random init on the GPU: billions of parameters
            model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, args.dtype))
    else:
        model = copy.deepcopy(reference)
        if recipe.model.liger:
            from tune.models.liger_patch import apply_liger

            apply_liger(model, recipe)
    return model.to(device=args.device, dtype=getattr(torch, args.dtype))


def wrap(model, recipe, adapters=None):
    """Add TRL's fused LM head and, for LoRA, tune's peft adapters (lora_B drawn non-zero, or copied)."""
    import torch
    from trl.trainer.utils import add_fused_lm_head

    from tune.models.adapters import lora_config

    if recipe.method.peft == "none":
        add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
        return model
    from peft import get_peft_model

    torch.manual_seed(0)
    peft_model = get_peft_model(model, lora_config(recipe))
    if adapters is None:
        generator = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    else:
        peft_model.load_state_dict(adapters, strict=False)
    add_fused_lm_head(peft_model.get_base_model(), outputs=("log_probs", "entropy", "is_top1"))
    return peft_model


def step(model, batch) -> dict:
    """One training forward/backward through the fused head: loss, router aux loss (MoE), every
    trainable gradient (on CPU, fp32) and the trainable parameters that got none."""
    model.train()
    outputs = model(**batch, use_cache=False, fused_lm_head=True)
    outputs.loss.backward()
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    return {"loss": outputs.loss.item(),
            "aux_loss": None if outputs.aux_loss is None else outputs.aux_loss.item(),
            "grads": {name: p.grad.detach().float().cpu() for name, p in params if p.grad is not None},
            "missing": [name for name, p in params if p.grad is None]}


def eval_logits(model, batch):
    import torch

    model.eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    model.train()
    return logits.float().cpu()


def compare(ref: dict, new: dict) -> dict:
    """Largest gradient differences, absolute and relative to each tensor's largest reference value."""
    assert ref.keys() == new.keys(), sorted(set(ref) ^ set(new))
    worst_abs, worst_rel, worst_name, zero = 0.0, 0.0, None, []
    for name, g in ref.items():
        diff = (g - new[name]).abs().max().item()
        scale = g.abs().max().item()
        if scale == 0:
            zero.append(name)
            continue
        if diff / scale > worst_rel:
            worst_rel, worst_name = diff / scale, name
        worst_abs = max(worst_abs, diff)
    return {"tensors": len(ref), "max_abs_diff": worst_abs, "max_rel_diff": worst_rel,
            "worst_tensor": worst_name, "zero_grad_tensors": zero}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("out")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--layers", type=int, default=None, help="real preset with this many layers (GPU)")
    parser.add_argument("--modes", default="full,lora")
    args = parser.parse_args()
    if os.environ.get("TRITON_INTERPRET") == "1":
        apply_interpreter_shim()
    from tune.training.quiet import quiet_library_chatter

    quiet_library_chatter()
    modes = args.modes.split(",")
    recipes = {(mode, liger): recipe_for(args.preset, mode, liger) for mode in modes for liger in (False, True)}
    references, results = {}, {"preset": args.preset, "device": args.device, "dtype": args.dtype,
                               "interpreter": os.environ.get("TRITON_INTERPRET") == "1"}
    # 1. every reference before anything is patched
    for mode in modes:
        base = build_model(recipes[mode, False], args)
        batch = make_batch(base.config.vocab_size, args.device)
        logits = eval_logits(base, batch) if mode == "full" else None
        experts_impl = getattr(base.config, "_experts_implementation", None)
        model = wrap(copy.deepcopy(base) if args.layers else base, recipes[mode, False])
        adapters = {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}
        references[mode] = {"base": base if args.layers else None, "batch": batch, "logits": logits,
                            "adapters": adapters, **step(model, batch)}
        del model
        results.setdefault("experts_implementation", experts_impl)
    # 2. the Liger models, same weights, same batch
    import transformers.models.llama.modeling_llama as modeling_llama
    import transformers.models.qwen3_moe.modeling_qwen3_moe as modeling_qwen3_moe
    from liger_kernel.transformers.rope import liger_rotary_pos_emb

    from tune.models.liger_patch import liger_modules

    calls = count_kernel_calls()
    for mode in modes:
        ref = references[mode]
        base = build_model(recipes[mode, True], args, reference=ref["base"])
        entry = {"liger_modules": liger_modules(base), "loss_ref": ref["loss"], "aux_loss_ref": ref["aux_loss"]}
        if mode == "full":
            logits = eval_logits(base, ref["batch"])
            entry["logits_max_abs_diff"] = (logits - ref["logits"]).abs().max().item()
            entry["logits_max_abs"] = ref["logits"].abs().max().item()
        model = wrap(base, recipes[mode, True], adapters=ref["adapters"] if mode == "lora" else None)
        calls.clear()
        new = step(model, ref["batch"])
        grads = new["grads"]
        entry.update(loss_liger=new["loss"], aux_loss_liger=new["aux_loss"], kernel_calls=dict(calls),
                     grads=compare(ref["grads"], grads), missing_grads=new["missing"] + ref["missing"],
                     lora_tensors=sum(1 for name in grads if "lora_" in name),
                     expert_lora_tensors=sum(1 for name in grads if "lora_" in name and ".experts." in name))
        results[mode] = entry
        del model, base
    results["rope_patched"] = {"llama": modeling_llama.apply_rotary_pos_emb is liger_rotary_pos_emb,
                               "qwen3_moe": modeling_qwen3_moe.apply_rotary_pos_emb is liger_rotary_pos_emb}
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
