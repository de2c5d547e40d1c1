"""The GPUs `tune plan` knows: peak dense bf16 FLOP/s and memory, from the vendor's data sheets.

Each figure is the data sheet's, with its source. NVIDIA quotes Tensor Core throughput "with
sparsity" (2:4 structured sparsity, which training does not use): the dense figure used here is
half of it. Memory is the data sheet's capacity in decimal GB; what CUDA lets a process allocate
is a little less (the CUDA context and the allocator's fragmentation take some GB), so `tune plan`
says a plan fits only with a stated margin (``FIT_MARGIN``).

Pure python (`tune plan` imports no torch).
"""

from __future__ import annotations

from dataclasses import dataclass

from tune.errors import UserError

# Share of a GPU's memory a plan may use before `tune plan` says it does not fit: the rest is for the
# CUDA context (~0.5-1 GB), NCCL's buffers and the caching allocator's fragmentation.
FIT_MARGIN = 0.90


@dataclass(frozen=True)
class Gpu:
    """One GPU model: ``bf16_flops`` dense bf16 Tensor Core FLOP/s, ``memory_bytes`` (decimal GB x 1e9)."""

    name: str
    bf16_flops: float
    memory_bytes: int
    source: str


GPUS: dict[str, Gpu] = {gpu.name: gpu for gpu in (
    # ABCI 3.0's rt_HF nodes: 8 x H200 SXM. "BF16 Tensor Core 1,979 TFLOPS (with sparsity)", "141GB HBM3e"
    Gpu("H200", 989.5e12, 141_000_000_000, "https://www.nvidia.com/en-us/data-center/h200/ (H200 SXM)"),
    # "BF16 Tensor Core 1,979 teraFLOPS (with sparsity)", "80GB"
    Gpu("H100", 989.5e12, 80_000_000_000, "https://www.nvidia.com/en-us/data-center/h100/ (H100 SXM)"),
    # "BF16 Tensor Core 312 TFLOPS | 624 TFLOPS (with sparsity)", "80GB HBM2e" / "40GB HBM2"
    Gpu("A100-80GB", 312e12, 80_000_000_000, "https://www.nvidia.com/en-us/data-center/a100/ (A100 80GB SXM)"),
    Gpu("A100-40GB", 312e12, 40_000_000_000, "https://www.nvidia.com/en-us/data-center/a100/ (A100 40GB SXM)"),
    # "BF16 Tensor Core 733 TFLOPS (with sparsity)" (362.05 dense), "48GB GDDR6"
    Gpu("L40S", 362.05e12, 48_000_000_000, "https://www.nvidia.com/en-us/data-center/l40s/"),
)}

DEFAULT_GPU = "H200"


def gpu_named(name: str) -> Gpu:
    """The GPU called ``name`` (case-insensitive); UserError naming the known ones otherwise."""
    for known, gpu in GPUS.items():
        if known.lower() == name.strip().lower():
            return gpu
    raise UserError(f"unknown GPU `{name}`; tune plan knows: {', '.join(GPUS)} "
                    "(peak bf16 and memory from the data sheets in tune/models/gpus.py)")
