"""The MoE router losses tune adds to a trainer: the router z-loss (`model.router_z_loss_coef`), and for
transformers' plain Trainer the load-balancing aux loss weighted as TRL weights it.

The z-loss is ST-MoE's (arXiv 2202.08906, eq. 5) as Megatron-Core computes it (megatron/core/transformer/moe/
moe_utils.py ``z_loss_func``, router.py ``apply_z_loss``): per MoE layer, the mean over tokens of
logsumexp(router logits)^2 on the pre-softmax logits; one loss per layer, so over the model

    z_loss = sum over MoE layers l of  mean over tokens t of  logsumexp_e(logits[l][t, e])^2

and ``router_z_loss_coef`` x z_loss is added to the training loss. The logits are the ones transformers' model
declares as its ``router_logits`` (``_can_record_outputs``: for Qwen3-MoE the first output of each
``Qwen3MoeTopKRouter``, shape [batch x sequence, experts], before the softmax); tune reads them with forward
hooks on those modules during the training forward, because TRL's SFTTrainer runs its fused LM head, whose
outputs carry no router logits (and its ``compute_loss(return_outputs=True)`` re-runs the forward without
gradients). Only logits computed with gradients enabled count, as in Megatron (`torch.is_grad_enabled()`):
a no-grad forward (a DPO reference, an evaluation, activation-checkpoint recomputation outside the loss)
adds nothing.

Padding: Megatron averages over the tokens of the micro batch, leaving out those its padding mask marks.
tune does the same with the batch's ``attention_mask`` when it has one row per routed token (SFT batches padded
by TRL's collator: padding tokens do not count); without one (cpt windows have no padding; padding-free packing
has only real tokens) every routed token counts.

Weight across gradient accumulation and processes: Megatron scales the z-loss gradient by 1 / (micro batches x
data-parallel size), i.e. the optimizer step sees coef x the mean of the micro batches' z-losses. transformers'
Trainer divides a micro batch's loss by the accumulation steps unless the loss is already normalized over the
whole accumulated batch (``num_items_in_batch``; ``Trainer.training_step``), and DDP / FSDP / ZeRO average the
gradients over processes; so tune adds coef x z / accumulation steps when the Trainer will not divide, coef x z
when it will, and never multiplies by the process count (the LM loss is, under
``average_tokens_across_devices``, because it is a sum over the global tokens; a per-micro-batch mean is not).
tests/training/test_router_losses.py checks that grad accumulation 1 and 2 give the same z-loss gradient.

transformers' own Qwen3-MoE forward adds coef x aux loss into ``outputs.loss``, where transformers' Trainer then
leaves it undivided by the accumulation steps and multiplies it by the process count (its
``num_items_in_batch`` handling is for the token-summed LM loss): the aux loss would weigh accumulation steps x
processes times its coefficient. TRL's SFTTrainer takes it out and adds it per micro batch divided by the
accumulation steps. ``RouterLossMixin(own_aux_loss=True)`` (tune's CptTrainer on plain transformers) does what TRL
does: the model's ``router_aux_loss_coef`` attribute is set to 0 on the instance (its config, and so the saved
model, keep the value), the model still returns ``outputs.aux_loss``, and the mixin adds coef x aux loss with
the z-loss's scaling. An evaluation's loss is then the LM loss alone (the perplexity of the held-out windows).

Logged apart from the loss, averaged over the logging window and the processes as `loss` is: ``z_loss`` (the
unweighted sum over layers above; the loss holds coef x z_loss) and, with ``own_aux_loss``, ``aux_loss`` (the
model's unweighted value, as TRL logs it). tune.training.progress shows ``lm_loss`` = loss - the weighted terms.
"""

from __future__ import annotations

import torch

from tune.errors import UserError


def router_z_loss(router_logits, coef: float, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``coef`` x sum over layers of the mean over tokens of logsumexp(logits, -1)^2 (module docstring), computed
    in float32. ``router_logits``: one [tokens, experts] tensor per MoE layer. ``attention_mask`` (0 on padding)
    is used when it has exactly one entry per token row; otherwise every row counts."""
    total = None
    for logits in router_logits:
        squared = torch.logsumexp(logits.float(), dim=-1).square()
        if attention_mask is not None and attention_mask.numel() == squared.numel():
            mask = attention_mask.reshape(-1).to(device=squared.device, dtype=squared.dtype)
            layer = (squared * mask).sum() / mask.sum().clamp(min=1.0)
        else:
            layer = squared.mean()
        total = layer if total is None else total + layer
    if total is None:
        raise ValueError("router_z_loss: no router logits (the model has no MoE layer)")
    return coef * total


def router_modules(model: torch.nn.Module) -> list[tuple[torch.nn.Module, int]]:
    """Every module whose output holds router logits, with the output's index: where the model's own
    ``_can_record_outputs["router_logits"]`` says (transformers' declaration of its router logits)."""
    targets = {}  # each model class in the tree (the causal LM and its backbone) declares the same recorder
    for module in model.modules():
        spec = (getattr(type(module), "_can_record_outputs", None) or {}).get("router_logits")
        if spec is not None:
            target, index = (spec, 1) if isinstance(spec, type) else (getattr(spec, "target_class", None), spec.index)
            if target is not None:
                targets[target] = index
    found = []
    for module in model.modules():
        index = next((index for target, index in targets.items() if isinstance(module, target)), None)
        if index is not None:
            found.append((module, index))
    return found


class RouterLogitsCapture:
    """Forward hooks on ``model``'s routers (``router_modules``) that collect the router logits computed with
    gradients between ``start()`` and ``stop()``; false when the model has no router."""

    def __init__(self, model: torch.nn.Module):
        self.logits: list[torch.Tensor] | None = None
        self.handles = [module.register_forward_hook(self._hook(index)) for module, index in router_modules(model)]

    def __bool__(self) -> bool:
        return bool(self.handles)

    def _hook(self, index: int):
        def collect(module, args, output):
            if self.logits is not None and torch.is_grad_enabled():
                self.logits.append(output[index] if isinstance(output, (tuple, list)) else output)
        return collect

    def start(self) -> None:
        self.logits = []

    def stop(self) -> list[torch.Tensor]:
        logits, self.logits = self.logits or [], None
        return logits


class RouterLossMixin:
    """A Trainer mixin: adds coef x the router z-loss to each training micro batch's loss and logs ``z_loss``
    (module docstring); with ``own_aux_loss`` (plain transformers Trainer) also weighs and logs the model's aux
    loss as TRL does. With ``router_z_loss_coef`` 0 and no aux loss of its own, it changes nothing.

    Refuses (UserError) a coefficient above 0 on a model without router logits (a dense model: `tune validate`
    refuses that recipe first)."""

    def __init__(self, *args, router_z_loss_coef: float = 0.0, own_aux_loss: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.router_z_loss_coef = router_z_loss_coef
        self._router_capture = RouterLogitsCapture(self.model) if router_z_loss_coef else None
        if self._router_capture is not None and not self._router_capture:
            raise UserError(f"model.router_z_loss_coef: {router_z_loss_coef:g} needs an MoE model with a router, and "
                            f"{type(self.model).__name__} has none; set it to 0")
        self.own_aux_loss_coef = _take_over_aux_loss(self.model) if own_aux_loss else 0.0
        self._router_metrics: dict[str, list[torch.Tensor]] = {}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        aux_coef = self.own_aux_loss_coef
        if not model.training or not (self.router_z_loss_coef or aux_coef):
            return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        mask = inputs.get("attention_mask")  # read first: the parent may change the inputs
        if self._router_capture is not None:
            self._router_capture.start()
        need_outputs = return_outputs or bool(aux_coef)  # TRL's SFTTrainer re-runs the forward to return outputs
        try:
            result = super().compute_loss(model, inputs, return_outputs=need_outputs, num_items_in_batch=num_items_in_batch)
        finally:
            logits = self._router_capture.stop() if self._router_capture is not None else []
        loss, outputs = result if need_outputs else (result, None)
        scale = 1.0 / self.current_gradient_accumulation_steps if self._scaled_for_accumulation(num_items_in_batch) else 1.0
        if self.router_z_loss_coef:
            if not logits:
                raise RuntimeError("router z-loss: the training forward ran no router with gradients enabled, so the "
                                   "z-loss has nothing to act on; this model's forward is not one tune knows")
            z = router_z_loss(logits, 1.0, mask)
            loss = loss + self.router_z_loss_coef * scale * z.to(loss.device)
            self._router_metrics.setdefault("z_loss", []).append(z.detach())
        if aux_coef:
            aux = outputs["aux_loss"]
            loss = loss + aux_coef * scale * aux.to(loss.device)
            self._router_metrics.setdefault("aux_loss", []).append(aux.detach())
        return (loss, outputs) if return_outputs else loss

    def _scaled_for_accumulation(self, num_items_in_batch) -> bool:
        """Whether transformers' ``training_step`` leaves this micro batch's loss undivided by the accumulation
        steps (its own rule: an explicit ``loss_is_scaled_for_ga``, else a loss normalized by ``num_items_in_batch``
        or a ``compute_loss_func``)."""
        explicit = getattr(self, "loss_is_scaled_for_ga", None)
        if explicit is not None:
            return bool(explicit)
        return bool((self.model_accepts_loss_kwargs and num_items_in_batch is not None) or self.compute_loss_func is not None)

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._router_metrics:  # a training log: the window's means, over every process
            for key, values in self._router_metrics.items():
                local = torch.stack([value.float() for value in values]).mean()
                logs[key] = self.accelerator.gather(local.reshape(1)).mean().item()
            self._router_metrics = {}
        super().log(logs, *args, **kwargs)


def _take_over_aux_loss(model: torch.nn.Module) -> float:
    """The aux-loss coefficient the model's forward adds (0 when it adds none), after setting it to 0 on the
    model instance so the forward no longer adds it (module docstring). The config keeps the value."""
    for module in model.modules():
        # the instance's own attribute: wrappers (peft) hand attribute reads through to the model they wrap
        coef = vars(module).get("router_aux_loss_coef")
        config = getattr(module, "config", None)
        if isinstance(coef, (int, float)) and not isinstance(coef, bool) and config is not None:
            text = config.get_text_config() if hasattr(config, "get_text_config") else config
            if not getattr(text, "output_router_logits", False) or not coef:
                return 0.0
            module.router_aux_loss_coef = 0.0
            return float(coef)
    return 0.0
