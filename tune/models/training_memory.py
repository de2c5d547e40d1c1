"""What one process holds on its device during a training step, by part, under `launch.strategy`.

`tune plan` prints it (tune.plan); the weights by storage come from tune.models.memory. Per
process (one GPU), in bytes:

    weights           the copy the modules hold: fp32 for full fine-tuning with fp32 masters under
                      DDP / one process / FSDP2 (it is the master copy), 16-bit under DeepSpeed's bf16
                      mode, `model.dtype` (or 4-bit) for a LoRA/QLoRA base; divided by the ranks under
                      `fsdp2` and `deepspeed_zero3`
    compute copy      16-bit weights that exist only for the compute: autocast's cached casts of every
                      matmul weight (fp32 masters on one process or DDP), or the unsharded layers an
                      FSDP2 / ZeRO-3 rank gathers (the root module: embeddings and head; two decoder
                      layers: the one computing and the one prefetched)
    master copy       DeepSpeed's fp32 partition of the weights: 4 bytes per parameter / ranks (also in
                      fp32 mode, where DeepSpeed clones the module's partition)
    gradients         one per trainable parameter in its dtype (divided under fsdp2 / ZeRO-2/3; ZeRO
                      keeps a 16-bit and an fp32 partition)
    gathered gradients  FSDP2 full fine-tuning: the unsharded gradients of the root and one layer,
                      waiting for their reduce-scatter
    optimizer states  AdamW: two per trainable parameter, in the masters' dtype (divided under every
                      sharding strategy)
    communication     DDP's gradient buckets: a second copy of the gradients (``gradient_as_bucket_view``
                      is off in accelerate's default)
    reference         full DPO: the frozen reference model (TRL prepares it like the policy)
    activations       what autograd saves for backward for one micro-batch (``activation_bytes``)

With `launch.cpu_offload` the parts the strategy offloads (FSDP2: sharded weights, gradients and
optimizer states; ZeRO-2: master copy, fp32 gradients and states; ZeRO-3: also the weights) are
counted in ``cpu_bytes`` instead.

Activations are bytes per token per decoder layer, a linear form in the layer's widths whose
coefficients were measured with ``torch.autograd.graph.saved_tensors_hooks`` on Llama and
Qwen3-MoE layers (transformers 5.24, sdpa; pinned by tests/models/test_plan.py against the same
measurement on the tiny twins): h hidden, q = heads x head_dim, kv = kv heads x head_dim,
i intermediate, E experts, k experts per token, mi expert intermediate.

    compute          dense layer (bytes / token)                       MoE layer adds / replaces the MLP
    fp32             24h + 8q + 8kv + 16i + 4 heads                     q/k norms 8(q+kv) + 4(heads+kv heads);
    bf16 autocast    26h + 4q + 4kv +  8i + 4 heads  (fp32 residual)    router 4E; per routed expert
    bf16 weights     16h + 4q + 4kv +  8i + 4 heads                     16mi + 8h (fp32), 8mi + 4h (16-bit)

A frozen base (LoRA / QLoRA) saves 2 values of h less; each adapted Linear adds its A output
(r values) and its input: a copy in the adapter's dtype when the base is 16-bit and the adapter
fp32, or dropout's output and mask (`method.lora.dropout` > 0). With gradient checkpointing a
layer keeps only its input (h values of the residual stream) and one layer is recomputed at a time.
Outside the layers: the final norm's fp32 input and output, and RoPE's cos/sin.
TRL's chunked LM head never materializes the logits (docs/liger.md), so none are counted.
The weights' arithmetic (what each strategy holds) follows each library's documented layout and
is checked against the bytes tiny-twin runs allocate (tests/models/test_plan.py); docs/plan.md.

Pure python (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tune.config.schema import Recipe
from tune.models.memory import DTYPE_BYTES as _BYTES
from tune.models.memory import MemoryEstimate, memory_estimate
from tune.models.shapes import architecture_config, expert_shapes, is_moe, is_moe_layer, linear_shapes

PARAMETER_SHARDING = ("fsdp2", "deepspeed_zero3")


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes on one device during a step, by part (module docstring); ``cpu_bytes`` offloaded to host."""

    strategy: str
    world_size: int
    parameters: int
    trainable: int
    weights: int
    compute_copy: int
    master_copy: int
    gradients: int
    gathered_gradients: int
    optimizer_states: int
    communication: int
    reference: int
    activations: int
    cpu_bytes: int
    compute: str  # fp32 | autocast | bf16: how the step computes (activation_bytes' mode)
    notes: tuple[str, ...] = field(default=())

    def parts(self) -> dict[str, int]:
        return {"weights": self.weights, "compute_copy": self.compute_copy, "master_copy": self.master_copy,
                "gradients": self.gradients, "gathered_gradients": self.gathered_gradients,
                "optimizer_states": self.optimizer_states,
                "communication": self.communication, "reference": self.reference, "activations": self.activations}

    @property
    def state_bytes(self) -> int:
        """Everything but the activations: what does not depend on the batch."""
        return self.total - self.activations

    @property
    def total(self) -> int:
        return sum(self.parts().values())


def compute_width(recipe: Recipe, on_gpu: bool = True) -> int:
    """Bytes per value of the step's compute: `train.precision` (auto: bf16 on a GPU, fp32 on CPU)."""
    precision = recipe.train.precision
    if precision == "auto":
        return 2 if on_gpu else 4
    return 4 if precision == "fp32" else 2


def training_memory(recipe: Recipe, on_gpu: bool = True, config: dict | None = None) -> TrainingMemory | None:
    """The per-device memory of a training step of ``recipe`` (module docstring); None when the
    architecture is unknown here. ``config`` replaces the recipe's architecture (measurement tests)."""
    config = config or architecture_config(recipe)
    estimate = memory_estimate(recipe, on_gpu=on_gpu, config=config)
    if estimate is None or config is None:
        return None
    launch = recipe.launch
    ranks = launch.nodes * launch.processes_per_node
    strategy = launch.strategy
    c = compute_width(recipe, on_gpu)
    full = recipe.method.peft == "none"
    total = estimate.quantized_params + estimate.expert_params + estimate.other_params
    root, layer = _root_params(config), max(_layer_params(config))
    shard_params = ranks if strategy in PARAMETER_SHARDING else 1
    shard_states = ranks if strategy != "ddp" else 1
    notes: list[str] = []

    weights = compute_copy = master = gradients = states = comm = reference = cpu = in_flight = 0
    trainable = estimate.trainable
    if full:
        w = _BYTES[estimate.trainable_dtype]
        if strategy.startswith("deepspeed"):
            # the module in the compute dtype (bf16 mode: 16-bit), an fp32 partition of the weights (a copy
            # even in fp32 mode: DeepSpeed clones it), fp32 states; bf16 mode adds an fp32 gradient partition
            weights = total * c // shard_params
            master = total * 4 // ranks
            gradients = total * c // ranks + (total * 4 // ranks if c < 4 else 0)
            states = _state_values(recipe, total) * 4 // ranks
        else:
            weights = total * w // shard_params
            gradients = total * w // shard_states
            states = _state_values(recipe, total) * w // shard_states
        if strategy in PARAMETER_SHARDING:
            compute_copy = (root + 2 * layer) * min(c, w)
            if strategy == "fsdp2":
                in_flight = (root + layer) * min(c, w)  # unsharded, waiting for their reduce-scatter
        elif c < w:
            compute_copy = _matmul_params(config) * c  # autocast's cached casts
        if strategy == "ddp" and ranks > 1:
            comm = total * w
        if recipe.method.name == "dpo":
            reference = total * (c if strategy.startswith("deepspeed") else w) // shard_params
    else:
        tw = _BYTES[estimate.trainable_dtype]
        weights = estimate.weight_bytes // shard_params
        if strategy in PARAMETER_SHARDING:
            compute_copy = (root + 2 * layer) * c
        if strategy.startswith("deepspeed"):
            weights += trainable * c // shard_params
            master = trainable * 4 // ranks
            gradients = trainable * c // ranks + (trainable * 4 // ranks if c < 4 else 0)
            states = _state_values(recipe, trainable) * 4 // ranks
        else:
            weights += trainable * tw // shard_params
            gradients = trainable * tw // shard_states
            states = _state_values(recipe, trainable) * tw // shard_states
        if strategy == "ddp" and ranks > 1:
            comm = trainable * tw
    if launch.cpu_offload and strategy != "ddp":
        fp32_grads = (total if full else trainable) * 4 // ranks if c < 4 else 0
        if strategy == "fsdp2":  # sharded weights, gradients and states live on the host
            cpu = weights + gradients + states
            weights, gradients, states = 0, 0, 0
        else:  # ZeRO-Offload: master copy, fp32 gradient partition and states (ZeRO-3: the weights too)
            cpu = master + fp32_grads + states + (weights if strategy == "deepspeed_zero3" else 0)
            master, states, gradients = 0, 0, gradients - fp32_grads
            if strategy == "deepspeed_zero3":
                weights = 0
        notes.append("launch.cpu_offload: the offloaded parts are in host memory (cpu_bytes), and each step "
                     "moves them over PCIe")
    activations = activation_bytes(config, recipe.train.per_device_batch_size * _rows_per_sample(recipe)
                                   * recipe.data.max_seq_len, _compute_mode(recipe, c, estimate),
                                   recipe.train.gradient_checkpointing, _lora_shape(recipe, estimate))
    return TrainingMemory(
        strategy=strategy, world_size=ranks, parameters=total, trainable=trainable, weights=weights,
        compute_copy=compute_copy, master_copy=master, gradients=gradients, gathered_gradients=in_flight,
        optimizer_states=states,
        communication=comm, reference=reference, activations=activations, cpu_bytes=cpu,
        compute=_compute_mode(recipe, c, estimate), notes=tuple(notes))


def _state_values(recipe: Recipe, trainable: int) -> int:
    """Optimizer state values for ``trainable`` parameters (as tune.models.memory counts them)."""
    optimizer = recipe.train.optimizer
    if optimizer.startswith("adamw"):
        return 2 * trainable
    if optimizer == "adafactor":
        return int(2 * trainable**0.5)
    return 0


def _rows_per_sample(recipe: Recipe) -> int:
    """Sequences one sample puts through the model with gradients: DPO's chosen and rejected (the
    reference's forward runs without autograd and saves nothing)."""
    return 2 if recipe.method.name == "dpo" else 1


def _compute_mode(recipe: Recipe, c: int, estimate: MemoryEstimate) -> str:
    if c == 4:
        return "fp32"
    if recipe.method.peft == "none":
        if estimate.trainable_dtype == "float32" and recipe.launch.strategy == "ddp":
            return "autocast"  # fp32 weights, 16-bit matmuls, fp32 residual stream
        return "bf16"  # FSDP2's mixed precision / DeepSpeed's bf16 module: the layers run on 16-bit weights
    return "bf16" if estimate.other_dtype != "float32" or recipe.method.peft == "qlora" else "autocast"


@dataclass(frozen=True)
class LoraShape:
    """What activation_bytes needs of the adapters: module suffixes, rank, dropout, widths."""

    modules: tuple[str, ...]
    r: int
    dropout: float
    adapter_width: int
    base_width: int


def _lora_shape(recipe: Recipe, estimate: MemoryEstimate) -> LoraShape | None:
    from tune.models.adapters import resolve_lora_targets

    if recipe.method.peft == "none":
        return None
    targets = resolve_lora_targets(recipe)
    base = 2 if recipe.method.peft == "qlora" else _BYTES[estimate.other_dtype]
    return LoraShape(targets.modules if targets else (), recipe.method.lora.r, recipe.method.lora.dropout,
                     _BYTES[estimate.trainable_dtype], base)


def activation_bytes(config: dict, tokens: int, mode: str, checkpointing: bool, lora: LoraShape | None = None,
                     recompute: bool = True) -> int:
    """Bytes autograd saves for backward over ``tokens`` tokens of one micro-batch (module docstring).
    ``mode``: fp32 | autocast | bf16. With ``checkpointing`` each layer keeps its input and, when
    ``recompute``, one layer's activations are added for the layer recomputed during backward
    (``recompute=False`` gives what the forward alone leaves, which tests measure)."""
    hidden = config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    residual = 2 if mode == "bf16" else 4
    per_layer = [_layer_bytes(config, index, mode, lora) for index in range(config["num_hidden_layers"])]
    rope = 0 if checkpointing else 8 * head_dim  # cos and sin (fp32), saved once for every layer
    # the final norm (its input upcast to fp32 and the result); with a frozen base and checkpointing, only
    # the fp32 input: the embedding's output needs no gradient
    outside = (6 if mode == "bf16" else 8) * hidden + 12 + rope
    if lora is not None:
        outside = 4 * hidden + 4 if checkpointing else rope
    if checkpointing:
        stored = len(per_layer) * hidden * residual + (max(per_layer) if recompute else 0)
    else:
        stored = sum(per_layer)
    return int(tokens * (stored + outside))


_DENSE = {"fp32": (24, 8, 16), "autocast": (26, 4, 8), "bf16": (16, 4, 8)}  # bytes per h, per q/kv, per i


def _layer_bytes(config: dict, index: int, mode: str, lora: LoraShape | None) -> float:
    """Bytes per token saved by decoder layer ``index`` (module docstring's table)."""
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    q, kv = heads * head_dim, config["num_key_value_heads"] * head_dim
    per_h, per_qkv, per_i = _DENSE[mode]
    size = per_h * hidden + per_qkv * (q + kv) + 4 * heads
    moe_layer = is_moe(config) and is_moe_layer(config, index)
    if is_moe(config):
        size += (8 if mode == "fp32" else 6) * (q + kv) + 4 * (heads + config["num_key_value_heads"])
    if moe_layer:
        k, mi = config["num_experts_per_tok"], config["moe_intermediate_size"]
        size += 4 * config["num_experts"] + k * ((16 * mi + 8 * hidden) if mode == "fp32" else (8 * mi + 4 * hidden))
    else:
        size += per_i * config["intermediate_size"]
    if lora is not None:
        size -= (8 if mode == "fp32" else 4) * hidden
        for name, (fan_in, _) in linear_shapes(config, moe_layer).items():
            if not any(name == m or name.endswith("." + m) or m.endswith(name) for m in lora.modules):
                continue
            size += lora.r * lora.adapter_width
            if lora.dropout > 0:
                size += fan_in * (lora.adapter_width + 1.7)  # dropout's output and its mask (measured 5.7 at fp32)
            elif lora.adapter_width != lora.base_width:
                size += fan_in * lora.adapter_width  # peft casts the input to the adapter's dtype
    return size


def _root_params(config: dict) -> int:
    """Parameters outside the decoder layers: embeddings, output head (unless tied), final norm."""
    hidden, vocab = config["hidden_size"], config["vocab_size"]
    return vocab * hidden * (1 if config.get("tie_word_embeddings") else 2) + hidden


def _layer_params(config: dict) -> list[int]:
    """Parameters of each decoder layer."""
    hidden = config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    counts = []
    for index in range(config["num_hidden_layers"]):
        moe_layer = is_moe(config) and is_moe_layer(config, index)
        count = sum(i * o for i, o in linear_shapes(config, moe_layer).values()) + 2 * hidden
        if is_moe(config):
            count += 2 * head_dim
        if moe_layer:
            count += sum(e * i * o for e, i, o in expert_shapes(config).values())
        counts.append(count)
    return counts


def _matmul_params(config: dict) -> int:
    """Parameters that enter a matmul (every Linear, the experts and the output head; not the
    embedding lookup or the norms): what autocast casts to 16 bits and caches for the step."""
    hidden, vocab = config["hidden_size"], config["vocab_size"]
    norms = 2 * hidden + (2 * (config.get("head_dim") or hidden // config["num_attention_heads"]) if is_moe(config) else 0)
    layers = sum(count - norms for count in _layer_params(config))
    return layers + vocab * hidden
