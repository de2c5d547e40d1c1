"""Liger's numerics on a real GPU: the same comparison as tests/models/test_liger.py, compiled kernels.

Runs tests/models/liger_numerics.py (Liger vs plain transformers on one batch: loss, logits and
every trainable gradient, full and LoRA, through TRL's fused LM head) in one process per case:
    - both tiny twins in fp32 (full and LoRA; Liger's kernels may use TF32 matmuls, hence the
      looser gradient bound than the interpreter's 1e-4);
    - the real LLM-jp-4 8B and 32B-A3B shapes cut to `--layers` layers (default 2; random weights,
      real widths, 196,608-token vocabulary, 128 experts top-8), bf16, LoRA (experts included).
Prints one line per case with the figures and PASS/FAIL; exits 1 when any case fails.

    python benchmarks/liger_check_gpu.py [--layers 2] [--skip-real]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELPER = ROOT / "tests" / "models" / "liger_numerics.py"
# (loss relative, gradient max relative per tensor, logits relative) bounds per dtype
BOUNDS = {"float32": (1e-4, 2e-2, 1e-3), "bfloat16": (2e-2, 2e-1, 5e-2)}
KERNELS = {"llama": ("rms_norm", "rope", "swiglu"), "qwen3_moe": ("rms_norm", "rope", "fused_moe_experts")}


def run_case(preset: str, dtype: str, modes: str, layers: int | None, work: Path) -> dict:
    out = work / f"{preset}-{dtype}.json"
    command = [sys.executable, str(HELPER), preset, str(out), "--device", "cuda", "--dtype", dtype, "--modes", modes]
    command += ["--layers", str(layers)] if layers else []
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        return {"error": "\n".join(done.stderr.strip().splitlines()[-5:])}
    return json.loads(out.read_text())


def verdict(result: dict, mode: str, family: str, dtype: str) -> tuple[bool, str]:
    loss_bound, grad_bound, logits_bound = BOUNDS[dtype]
    entry = result[mode]
    loss_rel = abs(entry["loss_liger"] - entry["loss_ref"]) / abs(entry["loss_ref"])
    grads = entry["grads"]
    ran = all(entry["kernel_calls"].get(k, 0) > 0 for k in KERNELS[family])
    ok = (ran and result["rope_patched"][family] and loss_rel <= loss_bound and grads["max_rel_diff"] <= grad_bound
          and not grads["zero_grad_tensors"] and not entry["missing_grads"] and grads["tensors"] > 0)
    text = (f"loss {entry['loss_ref']:.5f} vs {entry['loss_liger']:.5f} (rel {loss_rel:.1e}); "
            f"grads {grads['tensors']} tensors, max rel diff {grads['max_rel_diff']:.1e} ({grads['worst_tensor']}); "
            f"kernels {entry['kernel_calls']}")
    if "logits_max_abs_diff" in entry:
        logits_rel = entry["logits_max_abs_diff"] / entry["logits_max_abs"]
        ok = ok and logits_rel <= logits_bound
        text += f"; logits rel {logits_rel:.1e}"
    if entry.get("aux_loss_ref") is not None:
        ok = ok and abs(entry["aux_loss_liger"] - entry["aux_loss_ref"]) <= loss_bound * entry["aux_loss_ref"]
        text += f"; aux {entry['aux_loss_ref']:.4f} vs {entry['aux_loss_liger']:.4f}"
    if mode == "lora" and family == "qwen3_moe":
        ok = ok and entry["expert_lora_tensors"] > 0
    return ok, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=2, help="layers of the real-shape cases")
    parser.add_argument("--skip-real", action="store_true", help="only the tiny twins")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("liger_check_gpu.py needs a CUDA GPU; on CPU run tests/models/test_liger.py (Triton's interpreter)")
    cases = [("tiny-llm-jp-4-8b", "float32", "full,lora", None, "llama"),
             ("tiny-llm-jp-4-32b-a3b", "float32", "full,lora", None, "qwen3_moe")]
    if not args.skip_real:
        cases += [("llm-jp-4-8b", "bfloat16", "lora", args.layers, "llama"),
                  ("llm-jp-4-32b-a3b", "bfloat16", "lora", args.layers, "qwen3_moe")]
    print(f"GPU: {torch.cuda.get_device_name()}")
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for preset, dtype, modes, layers, family in cases:
            result = run_case(preset, dtype, modes, layers, Path(tmp))
            label = f"{preset}{f' ({layers} layers)' if layers else ''} {dtype}"
            if "error" in result:
                failed += 1
                print(f"FAIL {label}: the helper failed:\n{result['error']}")
                continue
            for mode in modes.split(","):
                ok, text = verdict(result, mode, family, dtype)
                failed += not ok
                print(f"{'PASS' if ok else 'FAIL'} {label} {mode}: {text}")
    print("all cases pass" if not failed else f"{failed} case(s) failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
