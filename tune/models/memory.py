"""The memory a recipe's model needs on its device, from the architecture alone (no torch).

`tune validate` prints it (``memory_plan``), so a user learns before loading 60 GiB whether the
run fits. What is counted, per process, without activations:
    weights     by storage: 4-bit (nf4/fp4) layers, 16/32-bit layers, experts either way
    trainable   LoRA parameters (or every weight, for full fine-tuning), their gradients and
                the optimizer's states
``memory_estimate`` returns None when the architecture is unknown here (a hub id).

Pure python (``tune validate`` imports no torch).

Where each figure comes from (checked against loaded tiny twins in tests/models/test_memory.py):
docs/memory.md
"""

from __future__ import annotations

from dataclasses import dataclass

from tune.config.schema import Recipe
from tune.models.adapters import resolve_lora_targets
from tune.models.shapes import architecture_config, expert_shapes, is_moe, is_moe_layer, linear_shapes

GIB = 1024**3
BLOCK = 64          # bitsandbytes 4-bit block size
NESTED_BLOCK = 256  # double quantization: absmax values per nested block
_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
DTYPE_BYTES = _BYTES  # bytes per value of each dtype name (tune.models.training_memory)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes on the device, by part; ``quantized`` / ``unquantized`` weights in parameters too."""

    quantized_params: int
    quantized_bytes: int
    expert_params: int
    expert_bytes: int
    experts_quantized: bool
    other_params: int
    other_bytes: int
    other_dtype: str
    trainable: int
    trainable_dtype: str
    gradient_bytes: int
    optimizer_bytes: int

    @property
    def weight_bytes(self) -> int:
        return self.quantized_bytes + self.expert_bytes + self.other_bytes

    @property
    def trainable_bytes(self) -> int:
        return self.trainable * _BYTES[self.trainable_dtype]

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.trainable_bytes + self.gradient_bytes + self.optimizer_bytes


def four_bit_bytes(numel: int, double_quant: bool) -> int:
    """Bytes bitsandbytes' quantize_4bit holds for a tensor of ``numel`` values: packed data,
    per-block absmax and the code tables (as QuantState stores them)."""
    blocks = -(-numel // BLOCK)
    packed = -(-numel // 2)
    if not double_quant:
        return packed + 4 * blocks + 4 * 16
    return packed + blocks + 4 * -(-blocks // NESTED_BLOCK) + 4 * 256 + 4 * 16 + 4


def memory_estimate(recipe: Recipe, on_gpu: bool = True, quantize_experts: bool = True,
                    config: dict | None = None) -> MemoryEstimate | None:
    """The estimate for ``recipe`` on a GPU (or, ``on_gpu=False``, on CPU, where `dtype: auto` is
    fp32); None when the architecture is unknown here (a hub id). ``quantize_experts=False`` gives
    what bitsandbytes alone would load (the fused experts left in 16 bits, then cast to fp32).
    ``config`` replaces the recipe's architecture (config.json keys; measurement tests)."""
    config = config or architecture_config(recipe)
    if config is None:
        return None
    qlora = recipe.method.peft == "qlora"
    dtype = _load_dtype(recipe, on_gpu)
    other_dtype = "float32" if qlora else dtype
    double_quant = bool(qlora and recipe.method.qlora.double_quant)
    hidden, vocab = config["hidden_size"], config["vocab_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    moe = is_moe(config)

    quantized_params = quantized_bytes = expert_params = expert_bytes = 0
    other = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2) + hidden
    for index in range(config["num_hidden_layers"]):
        moe_layer = moe and is_moe_layer(config, index)
        other += 2 * hidden + (2 * head_dim if moe else 0)
        for name, (fan_in, fan_out) in linear_shapes(config, moe_layer).items():
            if name == "gate" or not qlora:  # the router is no nn.Linear: bitsandbytes leaves it
                other += fan_in * fan_out
            else:
                quantized_params += fan_in * fan_out
                quantized_bytes += four_bit_bytes(fan_in * fan_out, double_quant)
        if moe_layer:
            for experts, fan_in, fan_out in expert_shapes(config).values():
                numel = experts * fan_in * fan_out
                expert_params += numel
                if qlora and quantize_experts:
                    expert_bytes += four_bit_bytes(numel, double_quant)
                else:
                    expert_bytes += numel * _BYTES[other_dtype]

    if recipe.method.peft == "none":
        trainable, trainable_dtype = quantized_params + expert_params + other, dtype
    else:
        targets = resolve_lora_targets(recipe)
        trainable = targets.trainable if targets else 0
        trainable_dtype = "bfloat16" if qlora else "float32"
    width = _BYTES[trainable_dtype]
    return MemoryEstimate(
        quantized_params=quantized_params,
        quantized_bytes=quantized_bytes,
        expert_params=expert_params,
        expert_bytes=expert_bytes,
        experts_quantized=qlora and quantize_experts,
        other_params=other,
        other_bytes=other * _BYTES[other_dtype],
        other_dtype=other_dtype,
        trainable=trainable,
        trainable_dtype=trainable_dtype,
        gradient_bytes=trainable * width,
        optimizer_bytes=_optimizer_bytes(recipe, trainable, width),
    )


def _load_dtype(recipe: Recipe, on_gpu: bool = True) -> str:
    """The dtype the weights load in, as tune.models.loading.weights_dtype decides it: fp32 for full
    fine-tuning with `train.master_weights: fp32` (the weights are the master copy), else `model.dtype`
    (`auto`: bf16 on a GPU, fp32 on CPU)."""
    if recipe.method.peft == "none" and recipe.train.master_weights == "fp32":
        return "float32"
    dtype = recipe.model.dtype
    return dtype if dtype != "auto" else ("bfloat16" if on_gpu else "float32")


def _optimizer_bytes(recipe: Recipe, trainable: int, width: int) -> int:
    optimizer = recipe.train.optimizer
    if optimizer.startswith("adamw"):
        return 2 * trainable * width
    if optimizer == "adafactor":  # factored second moment: about rows + columns per matrix, ~ 2 x sqrt
        return int(2 * (trainable**0.5)) * width
    return 0  # sgd without momentum


def size_text(size: int) -> str:
    """``size`` bytes as people read it: GiB from 0.1 GiB up, else MiB."""
    return _gib(size)


def _gib(size: int) -> str:
    return f"{size / GIB:.2f} GiB" if size >= GIB / 10 else f"{size / 1024**2:.2f} MiB"


def _params(count: int) -> str:
    return f"{count / 1e9:.2f}B" if count >= 1e8 else f"{count / 1e6:.2f}M"


def memory_plan(recipe: Recipe) -> list[str]:
    """Lines for `tune validate`: weights by storage, trainable parameters, gradients, optimizer
    states and their total on one GPU (activations not included); under several processes or a
    sharding `launch.strategy`, one more line with what each GPU holds of them
    (tune.models.training_memory)."""
    estimate = memory_estimate(recipe)
    if estimate is None:
        return ["memory: unknown until the model loads (architecture not known here)"]
    e = estimate
    kind = recipe.method.qlora.quant_type if recipe.method.peft == "qlora" else None
    parts = []
    if e.quantized_params:
        parts.append(f"{_params(e.quantized_params)} Linear params in {kind} {_gib(e.quantized_bytes)}")
    if e.expert_params:
        storage = kind if e.experts_quantized else e.other_dtype
        parts.append(f"{_params(e.expert_params)} expert params in {storage} {_gib(e.expert_bytes)}")
    parts.append(f"{_params(e.other_params)} {'embedding/head/norm/router' if recipe.method.peft == 'qlora' else 'other'} "
                 f"params in {e.other_dtype} {_gib(e.other_bytes)}")
    lines = [f"memory (one GPU, no activations): weights {_gib(e.weight_bytes)} = " + " + ".join(parts)]
    if e.experts_quantized and e.expert_params:
        plain = memory_estimate(recipe, quantize_experts=False)
        loading = e.weight_bytes - e.expert_bytes + e.expert_params * _BYTES[_load_dtype(recipe)] - e.other_params * (
            _BYTES[e.other_dtype] - _BYTES[_load_dtype(recipe)])
        loading = max(loading, e.weight_bytes)
        lines.append(f"memory: experts quantized by tune.models.quantized_experts (bitsandbytes alone leaves them "
                     f"16-bit and peft's k-bit preparation casts them to fp32: weights {_gib(plain.weight_bytes)}); "
                     f"loading peaks at {_gib(loading)}: the experts arrive in {_load_dtype(recipe)} and are "
                     f"quantized once loaded")
    what = "LoRA" if recipe.method.peft != "none" else "trainable"
    optimizer = recipe.train.optimizer
    lines.append(f"memory: {what} {_params(e.trainable)} params in {e.trainable_dtype} {_gib(e.trainable_bytes)}, "
                 f"gradients {_gib(e.gradient_bytes)}, {optimizer} states {_gib(e.optimizer_bytes)}; "
                 f"total {_gib(e.total_bytes)} + activations")
    launch = recipe.launch
    ranks = launch.nodes * launch.processes_per_node
    if ranks > 1 or launch.strategy != "ddp":
        from tune.models.training_memory import training_memory

        step = training_memory(recipe)
        parts = {"weights": step.weights, "fp32 master copy": step.master_copy, "gradients": step.gradients,
                 "optimizer states": step.optimizer_states}
        lines.append(f"memory per GPU under launch.strategy {launch.strategy} over {ranks} processes: "
                     + ", ".join(f"{name} {_gib(size)}" for name, size in parts.items() if size)
                     + "; `tune plan` adds the compute copies, activations, steps and time")
    return lines
