"""Continued pre-training throughput of the LLM-jp-4 8B shape on one GPU: tokens/s/GPU and MFU.

One command, under 8 minutes on one H100/H200, plain torch + transformers (no tune, trl, datasets,
bitsandbytes or pydantic needed), no hub access (random weights; the speed does not depend on them):

    python benchmarks/gpu/cpt_throughput.py [--seq 4096] [--steps 8] [--out cpt_throughput.json]

What one step is: a `LlamaForCausalLM` with LLM-jp-4 8B's config (``CONFIG_8B``: tune.models.presets'
llm-jp-4-8b, from the released config.json), fp32 master weights, bf16 autocast, the causal-LM loss on
windows of ``--seq`` tokens (as `method.name: cpt` trains them), gradient clipping at 1.0 and fused AdamW
(betas 0.9 / 0.95, eps 1e-8, weight decay 0.1: recipes/llm-jp-4-8b/cpt.yaml). The full 32 layers with
fp32 weights, gradients and Adam states need 16 bytes x 8.6B = 137 GB before any activation, more than
one GPU holds, so the model is cut in depth: to the most layers whose fp32 masters + Adam states and
activations fit (``--layers auto``), and to half of that. Two depths give the time of one layer and of
the rest (embedding, head, loss, optimizer): step(L) = a + b x L, so the full model's step is a + 32 b.

Cases (``--cases``): ``mb1`` micro batch 1 without recomputation (LLM-jp's Megatron setting), ``mb4-gc``
micro batch 4 with gradient checkpointing (recipes/llm-jp-4-8b/cpt.yaml's per-GPU work). Printed per case
and depth: tokens/s, MFU and CUDA's peak allocation; then the per-layer scaled 32-layer estimate of
tokens/s/GPU and MFU. The MFU counts model FLOPs as tune.models.flops does (6 x active matmul
parameters + 6 x layers x q width x sequence per token; recomputation not counted) against the GPU's
dense bf16 peak (tune.models.gpus: H200/H100 989.5 TFLOP/s). What this leaves out: FSDP2's
communication between GPUs and nodes (one GPU, no sharding) and the data loader (random token ids).
Beside it, LLM-jp's own figure for the 8B with Megatron-LM: ~5 h per 1B tokens on one 8-GPU node
(llm-jp/ft-llm-2026 midtraining/README.md), ~6,944 tokens/s per GPU.

``--tiny`` runs the same code on a small Llama on the CPU (``--device cpu``), to check the script without a GPU:
    python benchmarks/gpu/cpt_throughput.py --tiny --device cpu --layers 1,2 --seq 128 --steps 2 --warmup 1
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time

# LLM-jp-4 8B (tune.models.presets `llm-jp-4-8b`; shared/docs/llmjp4.md "Architecture"): the keys that shape the work.
CONFIG_8B = {
    "vocab_size": 196608, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "hidden_act": "silu",
    "rms_norm_eps": 1e-6, "rope_theta": 500000.0, "max_position_embeddings": 65536,
    "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "initializer_range": 0.02,
}
# A small Llama of the same proportions for --tiny (the CPU check).
CONFIG_TINY = {**CONFIG_8B, "vocab_size": 1024, "hidden_size": 128, "intermediate_size": 448,
               "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 32}
FULL_LAYERS = 32
# Dense bf16 Tensor Core peaks (tune.models.gpus: half the data sheets' "with sparsity" figures).
PEAKS = {"H200": 989.5e12, "H100": 989.5e12, "A100": 312e12, "L40S": 362.05e12}
LLMJP_TOKENS_PER_GPU_S = 1e9 / (5 * 3600 * 8)  # ft-llm-2026 midtraining/README.md: ~5 h per 1B tokens, 8 GPUs
CASES = {"mb1": (1, False), "mb4-gc": (4, True)}  # name: (micro batch, gradient checkpointing)


def active_matmul_params(config: dict, layers: int) -> int:
    """Matmul parameters a token goes through (tune.models.flops.active_matmul_params for a dense Llama)."""
    hidden, head_dim = config["hidden_size"], config["head_dim"]
    q, kv = config["num_attention_heads"] * head_dim, config["num_key_value_heads"] * head_dim
    layer = hidden * q + 2 * hidden * kv + q * hidden + 3 * hidden * config["intermediate_size"]
    return config["vocab_size"] * hidden + layers * layer


def flops_per_token(config: dict, layers: int, sequence: int) -> float:
    """Model FLOPs to train one token (tune.models.flops.flops_per_token, full training)."""
    q = config["num_attention_heads"] * config["head_dim"]
    return 6 * active_matmul_params(config, layers) + 6 * layers * q * sequence


def layer_params(config: dict) -> int:
    """Parameters of one decoder layer (its Linears and two RMSNorms)."""
    return active_matmul_params(config, 1) - config["vocab_size"] * config["hidden_size"] + 2 * config["hidden_size"]


def auto_layers(config: dict, memory_bytes: int, micro_batch: int, sequence: int, checkpointing: bool) -> int:
    """The most layers whose training state fits in ``memory_bytes``: 16 bytes per parameter (fp32 weight,
    gradient, two Adam states) + autocast's bf16 weight copies, plus activations (a generous estimate:
    ~36 bf16 values per hidden unit and 10 per FFN unit per token and layer, or only the layer inputs
    under checkpointing) and the fp32 logits with their gradient. 85% of the memory is used."""
    hidden, vocab, ffn = config["hidden_size"], config["vocab_size"], config["intermediate_size"]
    tokens = micro_batch * sequence
    fixed = 16 * (2 * vocab * hidden + hidden) + tokens * vocab * (2 + 4 + 4)
    full_layer_acts = tokens * (36 * hidden + 10 * ffn) * 2
    per_layer = 18 * layer_params(config) + (tokens * hidden * 2 * 2 if checkpointing else full_layer_acts)
    fixed += full_layer_acts if checkpointing else 0  # the layer being recomputed
    return max(1, min(FULL_LAYERS, int((0.85 * memory_bytes - fixed) // per_layer)))


def gpu_peak(device: str, given: float | None) -> tuple[str, float | None]:
    import torch

    if given:
        return "given", given * 1e12
    if device != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name()
    return name, next((peak for key, peak in PEAKS.items() if key in name), None)


def run_depth(config: dict, layers: int, micro_batch: int, checkpointing: bool, sequence: int, warmup: int,
              steps: int, device: str) -> dict:
    """Build the model cut to ``layers``, train ``warmup`` + ``steps`` steps, return the timed figures."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model_config = LlamaConfig(**{**config, "num_hidden_layers": layers}, use_cache=False)
    with torch.device(device):
        model = LlamaForCausalLM(model_config)  # fp32 master weights
    model.config.use_cache = False
    if checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x names it so
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1,
                                  fused=device == "cuda")
    generator = torch.Generator(device="cpu").manual_seed(1)
    batches = [torch.randint(0, config["vocab_size"], (micro_batch, sequence), generator=generator).to(device)
               for _ in range(2)]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for step in range(warmup + steps):
        ids = batches[step % 2]
        sync()
        start = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        if step >= warmup:
            times.append(time.perf_counter() - start)
        losses.append(float(loss.detach()))
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
    del model, optimizer, batches
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    step_s = sorted(times)[len(times) // 2]  # the median step
    return {"layers": layers, "micro_batch": micro_batch, "checkpointing": checkpointing, "step_s": step_s,
            "tokens_per_s": micro_batch * sequence / step_s, "peak_bytes": peak, "losses": losses}


def run_case(name: str, config: dict, args, peak: float | None) -> dict:
    """Both depths of case ``name`` and the per-layer scaled full-model figures."""
    import torch

    micro_batch, checkpointing = CASES[name]
    if args.layers == "auto":
        memory = torch.cuda.get_device_properties(0).total_memory if args.device == "cuda" else 8 << 30
        top = auto_layers(config, memory, micro_batch, args.seq, checkpointing)
        depths = sorted({max(1, top // 2), top})
    else:
        depths = sorted({int(x) for x in args.layers.split(",")})
    results = []
    for layers in reversed(depths):
        while True:
            try:
                results.append(run_depth(config, layers, micro_batch, checkpointing, args.seq, args.warmup,
                                         args.steps, args.device))
                break
            except torch.cuda.OutOfMemoryError:  # the estimate was optimistic: two layers fewer
                gc.collect()
                torch.cuda.empty_cache()
                if layers <= 2:
                    raise
                print(f"  {name}: {layers} layers do not fit, trying {layers - 2}", flush=True)
                layers -= 2
        r = results[-1]
        r["mfu"] = None if peak is None else r["tokens_per_s"] * flops_per_token(config, r["layers"], args.seq) / peak
        print(f"  {name} {r['layers']:>2} layers: step {r['step_s']:.3f} s, {r['tokens_per_s']:,.0f} tokens/s"
              + ("" if r["mfu"] is None else f", MFU {r['mfu']:.1%}")
              + ("" if r["peak_bytes"] is None else f", peak {r['peak_bytes'] / 2**30:.1f} GiB")
              + f", loss {r['losses'][0]:.2f} -> {r['losses'][-1]:.2f}", flush=True)
    results.sort(key=lambda r: r["layers"])
    case = {"case": name, "micro_batch": micro_batch, "checkpointing": checkpointing, "depths": results}
    if len(results) >= 2 and results[-1]["layers"] > results[0]["layers"]:
        low, high = results[0], results[-1]
        per_layer = (high["step_s"] - low["step_s"]) / (high["layers"] - low["layers"])
        rest = low["step_s"] - per_layer * low["layers"]
        full_step = rest + per_layer * FULL_LAYERS
        tokens = micro_batch * args.seq / full_step
        case.update(per_layer_s=per_layer, rest_s=rest, full_step_s=full_step, full_tokens_per_s=tokens,
                    full_mfu=None if peak is None else tokens * flops_per_token(config, FULL_LAYERS, args.seq) / peak)
        print(f"  {name} scaled to {FULL_LAYERS} layers: {per_layer * 1e3:.1f} ms per layer + {rest * 1e3:.1f} ms rest "
              f"= step {full_step:.3f} s, {tokens:,.0f} tokens/s per GPU"
              + ("" if case["full_mfu"] is None else f", MFU {case['full_mfu']:.1%}"), flush=True)
    return case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=4096, help="tokens per window (default 4096, LLM-jp's)")
    parser.add_argument("--layers", default="auto", help="depths to time, e.g. 8,16 (default: the most that fit and half)")
    parser.add_argument("--cases", default="mb1,mb4-gc", help=f"comma list of {', '.join(CASES)}")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per depth (default 3)")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per depth; the median counts (default 8)")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--tiny", action="store_true", help="a small Llama instead of the 8B shape (CPU check)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak, when the GPU is not known")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU here: run with --tiny --device cpu to check the script", file=sys.stderr)
        return 2
    config = CONFIG_TINY if args.tiny else CONFIG_8B
    gpu, peak = gpu_peak(args.device, args.peak_tflops)
    print(f"cpt throughput: {'tiny Llama' if args.tiny else 'LLM-jp-4 8B shape'}, seq {args.seq}, on {gpu}"
          + ("" if peak is None else f" (dense bf16 peak {peak / 1e12:.1f} TFLOP/s)")
          + f"; torch {torch.__version__}", flush=True)
    started = time.perf_counter()
    cases = [run_case(name.strip(), config, args, peak) for name in args.cases.split(",") if name.strip()]
    print(f"LLM-jp's figure (theirs, Megatron-LM on 8 x H200): ~{LLMJP_TOKENS_PER_GPU_S:,.0f} tokens/s per GPU "
          f"(~5 h per 1B tokens on one node, llm-jp/ft-llm-2026 midtraining/README.md); total {time.perf_counter() - started:.0f} s")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump({"gpu": gpu, "peak_flops": peak, "seq": args.seq, "tiny": args.tiny, "torch": torch.__version__,
                       "flops_per_token_full": flops_per_token(config, FULL_LAYERS, args.seq),
                       "llmjp_tokens_per_gpu_s": LLMJP_TOKENS_PER_GPU_S, "cases": cases}, handle, indent=2)
    return 0 if all(math.isfinite(r["losses"][-1]) for c in cases for r in c["depths"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
