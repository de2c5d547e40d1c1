"""`tune plan` against a real GPU: peak memory and tokens/s of 8B-shaped training, next to the plan's figures.

One command, under 8 minutes on one H100/H200, no hub access (random weights of the real shapes; the
figures do not depend on the weight values):

    python benchmarks/gpu/plan_check.py [--seq 4096] [--steps 3] [--out plan_check.json]

Cases, each in its own process (so that one case's allocator state never counts in another's peak),
each built as `tune run` builds it (tune's recipe, LoRA targets, TRL's fused LM head, AdamW):

    lora       LLM-jp-4 8B, all 32 layers, bf16 base + fp32 LoRA (recipes/llm-jp-4-8b/sft-lora.yaml)
    qlora      LLM-jp-4 8B, all 32 layers, nf4 + double quant base, bf16 LoRA (recipes/llm-jp-4-8b/qlora.yaml;
               the random bf16 Linears are quantized in place with bitsandbytes, as loading a checkpoint would)
    full-4     LLM-jp-4 8B cut to 4 and to 8 of its 32 layers, full fine-tuning with fp32 master weights
    full-8     and bf16 autocast on one GPU (recipes/llm-jp-4-8b/sft-full.yaml, one process): the two depths
               give the memory and the time of one layer, scaled to 32 layers

Every case runs at micro batch 1 and ``--seq`` tokens with the recipe's gradient checkpointing, ``--warmup``
steps untimed then ``--steps`` timed. Printed per case: CUDA's peak allocation (``max_memory_allocated``:
what tensors hold, the plan's quantity; the caching allocator reserves somewhat more), the plan's total for
the same case (tune.models.training_memory with the same layer count), their ratio, tokens/s and the MFU
that implies (tune.models.flops on the GPU's peak from tune.models.gpus). For full fine-tuning also the
per-layer slope and the 32-layer extrapolation of peak and step time against the plan's full-depth figure.

``--device cpu`` runs the same code on the tiny twins (peak = RSS growth), to check the script without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CASES = {  # name: (recipe, layers or None for all)
    "lora": ("llm-jp-4-8b/sft-lora", None),
    "qlora": ("llm-jp-4-8b/qlora", None),
    "full-4": ("llm-jp-4-8b/sft-full", 4),
    "full-8": ("llm-jp-4-8b/sft-full", 8),
}
TINY = {"llm-jp-4-8b": "tiny-llm-jp-4-8b"}


def case_recipe(name: str, seq: int, device: str):
    """The case's recipe, on one process, micro batch 1 at ``seq`` tokens."""
    from tune.recipe import load_recipe

    recipe_name, _ = CASES[name]
    overrides = ["launch.nodes=1", "launch.processes_per_node=1", "launch.strategy=ddp",
                 "train.per_device_batch_size=1", "train.grad_accumulation=1", f"data.max_seq_len={seq}",
                 "output.dir=/tmp/plan-check-unused"]
    if device == "cpu":
        overrides.append(f"model.name={TINY['llm-jp-4-8b']}")
    return load_recipe(recipe_name, overrides).recipe


def case_config(recipe, layers: int | None) -> dict:
    from tune.models.shapes import architecture_config

    keys = dict(architecture_config(recipe))
    if layers:
        keys["num_hidden_layers"] = layers
    return keys


def quantize_linears(model, recipe, device: str) -> None:
    """Every decoder-layer Linear to a bitsandbytes Linear4bit with the recipe's `method.qlora` settings,
    from the weights it holds (what loading a checkpoint with BitsAndBytesConfig produces)."""
    import bitsandbytes as bnb
    import torch

    qlora = recipe.method.qlora
    for layer in model.model.layers:
        for parent in list(layer.modules()):
            for child_name, child in list(parent.named_children()):
                if not isinstance(child, torch.nn.Linear) or isinstance(child, bnb.nn.Linear4bit):
                    continue
                new = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                        compute_dtype=getattr(torch, qlora.compute_dtype),
                                        compress_statistics=qlora.double_quant, quant_type=qlora.quant_type,
                                        device="meta")
                new.weight = bnb.nn.Params4bit(child.weight.data.to("cpu"), requires_grad=False,
                                               compress_statistics=qlora.double_quant, quant_type=qlora.quant_type)
                new = new.to(device)  # quantizes
                setattr(parent, child_name, new)
                del child
        if device == "cuda":
            torch.cuda.empty_cache()


def build(recipe, keys: dict, device: str):
    """The model as `tune run` trains it for ``recipe`` (the weights random, of the config's shapes)."""
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoConfig, AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from tune.models.adapters import lora_config

    config = AutoConfig.for_model(**{k: v for k, v in keys.items() if k != "architectures"})
    config.architectures = keys.get("architectures")
    config._attn_implementation = "sdpa"
    full = recipe.method.peft == "none"
    dtype = torch.float32 if full or device == "cpu" else torch.bfloat16  # full: fp32 masters
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    add_fused_lm_head(model)
    checkpointing = recipe.train.gradient_checkpointing
    kwargs = {"use_reentrant": False}
    if recipe.method.peft == "qlora":
        quantize_linears(model, recipe, device)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing,
                                                gradient_checkpointing_kwargs=kwargs)
    elif checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        if not full:
            model.enable_input_require_grads()
    if not full:
        model = get_peft_model(model, lora_config(recipe))
        if recipe.method.peft == "qlora":  # TRL keeps a 4-bit model's adapters in bf16
            for name, param in model.named_parameters():
                if param.requires_grad:
                    param.data = param.data.to(torch.bfloat16)
    return model


def worker(args) -> dict:
    import torch

    from tune.models.flops import flops_per_token
    from tune.models.training_memory import training_memory
    from tune.training.quiet import quiet_library_chatter

    quiet_library_chatter()
    recipe = case_recipe(args.case, args.seq, args.device)
    keys = case_config(recipe, CASES[args.case][1] if args.device == "cuda" else None)
    on_gpu = args.device == "cuda"
    before = _rss()
    model = build(recipe, keys, args.device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    ids = torch.randint(16, keys["vocab_size"], (1, args.seq), generator=torch.Generator().manual_seed(0))
    ids = ids.to(args.device)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    full = recipe.method.peft == "none"
    autocast = full and (on_gpu or recipe.train.precision == "bf16")

    def one_step() -> float:
        with torch.autocast(args.device, dtype=torch.bfloat16, enabled=autocast):
            loss = model(**batch, use_cache=False, fused_lm_head=True).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()  # synchronizes

    for _ in range(args.warmup):
        one_step()
    if on_gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    losses = [one_step() for _ in range(args.steps)]
    elapsed = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() if on_gpu else _peak_rss() - before
    planned = training_memory(recipe, on_gpu=on_gpu, config=keys)
    tokens_per_s = args.steps * args.seq / elapsed
    result = {"case": args.case, "layers": keys["num_hidden_layers"], "seq": args.seq, "peak_bytes": peak,
              "planned_bytes": planned.total, "planned_parts": planned.parts(), "ratio": peak / planned.total,
              "tokens_per_s": tokens_per_s, "step_s": elapsed / args.steps, "loss": losses[-1],
              "flops_per_token": flops_per_token(keys, args.seq, full)}
    if on_gpu:
        result["gpu"] = torch.cuda.get_device_name()
    return result


def _rss() -> int:
    import resource

    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_case(args, case: str) -> dict:
    command = [sys.executable, __file__, "--worker", case, "--seq", str(args.seq), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--device", args.device]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "MALLOC_MMAP_THRESHOLD_": "65536"}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=args.case_timeout)
    if done.returncode != 0:
        return {"case": case, "error": "\n".join(done.stderr.strip().splitlines()[-15:]) or "failed"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - started
    return result


def gpu_peak_flops(name: str | None) -> tuple[str, float]:
    from tune.models.gpus import GPUS

    for known, gpu in GPUS.items():
        if name and known.split("-")[0].lower() in name.lower():
            return known, gpu.bf16_flops
    return "H200", GPUS["H200"].bf16_flops


def summary(args, results: dict) -> list[str]:
    from tune.models.training_memory import training_memory

    gib = 2**30
    lines = [f"{'case':8} {'layers':>6} {'peak GiB':>9} {'plan GiB':>9} {'peak/plan':>9} {'tokens/s':>9} {'MFU':>6}"]
    for case, r in results.items():
        if "error" in r:
            lines.append(f"{case:8} error: {r['error'].splitlines()[-1]}")
            continue
        gpu, peak_flops = gpu_peak_flops(r.get("gpu"))
        mfu = r["tokens_per_s"] * r["flops_per_token"] / peak_flops
        lines.append(f"{case:8} {r['layers']:>6} {r['peak_bytes'] / gib:>9.2f} {r['planned_bytes'] / gib:>9.2f} "
                     f"{r['ratio']:>9.2f} {r['tokens_per_s']:>9.0f} {mfu:>6.1%}")
    four, eight = results.get("full-4", {}), results.get("full-8", {})
    if args.device == "cuda" and "peak_bytes" in four and "peak_bytes" in eight:
        per_layer = (eight["peak_bytes"] - four["peak_bytes"]) / 4
        per_layer_s = (eight["step_s"] - four["step_s"]) / 4
        depth = 32
        extrapolated = eight["peak_bytes"] + (depth - 8) * per_layer
        recipe = case_recipe("full-8", args.seq, args.device)
        planned = training_memory(recipe, on_gpu=True).total
        lines.append(f"full fine-tuning, fp32 masters, one GPU: {per_layer / gib:.2f} GiB and {per_layer_s * 1000:.0f} ms "
                     f"per layer; 32 layers: peak {extrapolated / gib:.1f} GiB (plan {planned / gib:.1f} GiB, ratio "
                     f"{extrapolated / planned:.2f}), step {eight['step_s'] + (depth - 8) * per_layer_s:.2f} s at "
                     f"{args.seq} tokens")
        results["full-32-extrapolated"] = {"per_layer_bytes": per_layer, "per_layer_s": per_layer_s,
                                           "peak_bytes": extrapolated, "planned_bytes": planned,
                                           "step_s": eight["step_s"] + (depth - 8) * per_layer_s}
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=None, help="tokens per sequence (default 4096 on GPU, 128 on CPU)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--device", default=None, help="cuda (default when available) or cpu (tiny twins)")
    parser.add_argument("--case-timeout", type=int, default=110, help="seconds per case before it counts as failed")
    parser.add_argument("--out", default=None, help="also write the figures as JSON here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.seq is None:
        args.seq = 4096 if args.device == "cuda" else 128
    if args.worker:
        args.case = args.worker
        print(json.dumps(worker(args)))
        return
    results = {case: run_case(args, case) for case in args.cases.split(",")}
    lines = summary(args, results)
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
