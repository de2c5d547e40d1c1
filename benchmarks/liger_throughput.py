"""Liger's effect on LoRA training: tokens/s and peak memory with and without `model.liger`, side by side.

On a CUDA GPU: LLM-jp-4 8B (all 32 layers) and LLM-jp-4 32B-A3B scaled down to `--moe-layers`
layers (default 8 of 32, to fit one GPU with room for both runs), bf16, LoRA with tune's targets
(experts included on the MoE), batch 1 at `--seq` (default 4096), random weights from the preset's
config (throughput does not depend on the weight values; no download needed). Each run is one
training step as TRL's trainers run it (TRL's fused LM head, backward, AdamW), `--steps` timed after
`--warmup` steps, each configuration in its own process (Liger patches module globals).

On a CPU-only machine the same table is printed for the tiny twins (fp32, `--seq` 64 by default),
with Liger run under Triton's CPU interpreter (`TRITON_INTERPRET=1`, with the test-only shim of
tests/models/liger_numerics.py): those Liger figures measure the interpreter, not the kernels, and
the peak memory is the process' peak RSS rather than CUDA's peak allocation.

    python benchmarks/liger_throughput.py [--seq 4096] [--steps 5] [--moe-layers 8] [--gradient-checkpointing]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(preset: str, layers: int | None, liger: bool, device: str, dtype: str, checkpointing: bool):
    """The LoRA-wrapped model with TRL's fused head, as `tune run` trains it (Liger applied before peft)."""
    import torch
    from peft import get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from tune.recipe import load_recipe
    from tune.models.adapters import lora_config
    from tune.models.loading import router_overrides
    from tune.models.presets import get_preset

    recipe = load_recipe("tiny/sft-lora", [f"model.name={preset}", f"model.liger={str(liger).lower()}",
                                            "output.dir=/tmp/liger-throughput-unused"]).recipe
    keys = {**get_preset(preset).config, **router_overrides(recipe)}
    if layers:
        keys["num_hidden_layers"] = layers
    config = AutoConfig.for_model(**{k: v for k, v in keys.items() if k != "architectures"})
    config.architectures = keys["architectures"]
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    if liger:
        from tune.models.liger_patch import apply_liger

        apply_liger(model, recipe)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, lora_config(recipe))
    add_fused_lm_head(model.get_base_model(), outputs=("log_probs", "entropy", "is_top1"))
    return model


def worker(args) -> dict:
    """One configuration: timed training steps; prints a JSON line."""
    import torch

    if args.liger and args.device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
        os.environ.setdefault("LIGER_FUSED_MOE_AUTOTUNE", "0")
        import importlib.util

        spec = importlib.util.spec_from_file_location("liger_numerics", ROOT / "tests" / "models" / "liger_numerics.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.apply_interpreter_shim()
    from tune.training.quiet import quiet_library_chatter

    quiet_library_chatter()
    model = build(args.preset, args.layers, args.liger, args.device, args.dtype, args.gradient_checkpointing)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(16, model.config.vocab_size, (1, args.seq), generator=generator).to(args.device)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}

    def one_step() -> float:
        loss = model(**batch, use_cache=False, fused_lm_head=True).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()  # synchronizes

    for _ in range(args.warmup):
        one_step()
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    losses = [one_step() for _ in range(args.steps)]
    elapsed = time.perf_counter() - started
    if args.device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {"tokens_per_s": args.steps * args.seq / elapsed, "peak_gib": peak, "loss": losses[-1],
            "layers": model.config.num_hidden_layers}


def run_worker(args, preset: str, layers: int | None, liger: bool) -> dict:
    command = [sys.executable, __file__, "--worker", "--preset", preset, "--seq", str(args.seq), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--device", args.device, "--dtype", args.dtype]
    command += ["--layers", str(layers)] if layers else []
    command += ["--liger"] if liger else []
    command += ["--gradient-checkpointing"] if args.gradient_checkpointing else []
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=None, help="tokens per sequence (default 4096 on GPU, 64 on CPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 5 on GPU, 2 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2 on GPU, 1 on CPU)")
    parser.add_argument("--moe-layers", type=int, default=8, help="layers of the scaled-down 32B-A3B on GPU (of 32)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--layers", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--liger", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--device", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    import torch

    gpu = torch.cuda.is_available()
    args.device, args.dtype = ("cuda", "bfloat16") if gpu else ("cpu", "float32")
    args.seq = args.seq or (4096 if gpu else 64)
    args.steps = args.steps or (5 if gpu else 2)
    args.warmup = args.warmup if args.warmup is not None else (2 if gpu else 1)
    rows = ([("LLM-jp-4 8B LoRA", "llm-jp-4-8b", None), ("LLM-jp-4 32B-A3B LoRA", "llm-jp-4-32b-a3b", args.moe_layers)]
            if gpu else [("tiny 8B twin LoRA", "tiny-llm-jp-4-8b", None), ("tiny 32B-A3B twin LoRA", "tiny-llm-jp-4-32b-a3b", None)])
    if gpu:
        print(f"GPU: {torch.cuda.get_device_name()}, bf16, batch 1 x {args.seq} tokens, {args.steps} timed steps"
              f"{', gradient checkpointing' if args.gradient_checkpointing else ''}")
    else:
        print(f"CPU only: tiny twins, fp32, batch 1 x {args.seq} tokens, {args.steps} timed steps; Liger runs under "
              "Triton's CPU interpreter (TRITON_INTERPRET=1), so its figures measure the interpreter, not the kernels; "
              "peak memory is the process' peak RSS")
    memory = "peak GiB" if gpu else "peak RSS GiB"
    print(f"{'':<24}{'layers':>7}{'tok/s plain':>13}{'tok/s Liger':>13}{'ratio':>7}"
          f"{memory + ' plain':>20}{memory + ' Liger':>20}{'ratio':>7}")
    for label, preset, layers in rows:
        plain, liger = run_worker(args, preset, layers, False), run_worker(args, preset, layers, True)
        if "error" in plain or "error" in liger:
            print(f"{label:<24} plain: {plain.get('error', 'ok')}  Liger: {liger.get('error', 'ok')}")
            continue
        print(f"{label:<24}{plain['layers']:>7}{plain['tokens_per_s']:>13,.0f}{liger['tokens_per_s']:>13,.0f}"
              f"{liger['tokens_per_s'] / plain['tokens_per_s']:>7.2f}{plain['peak_gib']:>20.2f}{liger['peak_gib']:>20.2f}"
              f"{liger['peak_gib'] / plain['peak_gib']:>7.2f}")
        print(f"{'':<24}last loss: plain {plain['loss']:.4f}, Liger {liger['loss']:.4f}")


if __name__ == "__main__":
    main()
