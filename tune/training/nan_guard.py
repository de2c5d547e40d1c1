"""The numerical guard: a non-finite loss, gradient norm or weight stops the run before anything is saved.

Every trainer tune builds (tune.training.trainers) carries ``NonFiniteGuardMixin``. Per optimizer step:

    loss          each micro-batch's loss (``training_step``, the documented Trainer method) is kept
                  on the device, with no synchronisation, and checked once the step's last
                  micro-batch has run its backward pass;
    gradient      the norm of the trainable parameters' gradients, before clipping (the figure
                  transformers logs as ``grad_norm``), checked at the same point, before the
                  optimizer step: a non-finite one never reaches the weights;
    weights       at a step that will save a checkpoint, evaluate or end the run, the trainable
                  weights themselves (a finite gradient can still blow them up, e.g. a weight
                  decay of 1e30 multiplies every weight by -1e27 per step), before the save.

On a failure it raises ``NonFiniteTraining`` (a UserError: `tune run` prints it and exits 2) naming
the step, what went non-finite, the last good checkpoint (every checkpoint was written after these
checks passed, so the newest one is good; none after the failing step is written) and the knobs
that usually cause it (`train.lr`, `train.weight_decay`, `train.precision`, `train.max_grad_norm`,
the data). ``trainer.train()`` never returns, so `final/` and the manifest are not written, and the
failing step's loss never reaches ``metrics.jsonl``; transformers' ``logging_nan_inf_filter``
(which logs a non-finite loss as the mean of earlier ones, 0.0 right after a log) is turned off by
tune.training.arguments, so no other figure hides one either.

fp16 is different: its loss scaler multiplies the loss before the backward pass, so a gradient can
overflow only because the scale is too high. Under fp16 with a loss scaler, a non-finite gradient
with a finite loss is a **skipped step**: the scaler skips the optimizer step (the weights stay as
they were) and halves its scale; the guard confirms the step was skipped (accelerate's
``step_was_skipped``), counts it, prints a line, and lets the run go on. A non-finite loss is a
failure in every precision (scaling happens after the loss), and so are ``MAX_SKIPPED_IN_A_ROW``
skipped steps in a row: the scale has then fallen from 2**16 below 2**-8, so the gradient overflows
by itself, and the run would go on without learning.

With several processes (DDP), each process's verdict is combined (an all-reduce of two flags per
optimizer step), so every process stops at the same step with the same message.
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from tune.errors import UserError

MAX_SKIPPED_IN_A_ROW = 25


class NonFiniteTraining(UserError):
    """The run produced a non-finite loss, gradient norm or weight; nothing from that step was saved."""


class NonFiniteGuardMixin:
    """A Trainer mixin that adds the guard (module docstring): the loss and gradient checks in
    ``training_step``, the fp16 skip accounting and the weight check in a callback."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.nonfinite_guard = NonFiniteGuard()
        self.add_callback(self.nonfinite_guard)

    def training_step(self, *args, **kwargs):
        loss = super().training_step(*args, **kwargs)
        guard = self.nonfinite_guard
        guard.step_losses.append(loss.detach().reshape(-1))
        if self.accelerator.sync_gradients:  # the step's last micro-batch: gradients are complete
            losses, guard.step_losses = guard.step_losses, []
            self._check_step(losses)
        return loss

    def _check_step(self, losses: list) -> None:
        import torch

        losses = torch.cat(losses)
        grad_norm = gradient_norm(self.model).to(losses.device)
        loss_bad, grad_bad = any_process(torch.stack([(~torch.isfinite(losses)).any(), ~torch.isfinite(grad_norm)]))
        step = self.state.global_step + 1
        if loss_bad:
            bad = losses[~torch.isfinite(losses)]
            value = bad[0].item() if len(bad) else float("nan")  # another process's loss when empty here
            raise NonFiniteTraining(failure_message(self.args, step, f"the loss is {value}"))
        if grad_bad:
            if self.args.fp16 and getattr(self.accelerator, "scaler", None) is not None:
                self.nonfinite_guard.overflow_expected = True  # the scaler skips this step: on_optimizer_step
                return
            raise NonFiniteTraining(failure_message(
                self.args, step, f"the gradient norm is {grad_norm.item()} (the loss was finite: {losses.mean().item():.4g})"))


class NonFiniteGuard(TrainerCallback):
    """The guard's callback: fp16 skipped steps (``on_optimizer_step``), the weight check before a
    save, an evaluation or the end (``on_step_end``), a summary of skipped steps (``on_train_end``)."""

    def __init__(self, printer=print) -> None:
        self.printer = printer
        self.step_losses: list = []
        self.overflow_expected = False
        self.skipped_steps: list[int] = []
        self.skipped_in_a_row = 0

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        expected, self.overflow_expected = self.overflow_expected, False
        step = state.global_step + 1
        skipped = bool(getattr(optimizer, "step_was_skipped", False))
        if expected and not skipped:
            raise NonFiniteTraining(failure_message(
                args, step, "the gradient norm is not finite and the fp16 loss scaler did not skip the step"))
        if not skipped:
            self.skipped_in_a_row = 0
            return
        self.skipped_steps.append(step)
        self.skipped_in_a_row += 1
        if self.skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
            raise NonFiniteTraining(failure_message(
                args, step, f"the fp16 gradient overflowed {self.skipped_in_a_row} steps in a row: the loss scaler "
                "has lowered its scale below 2**-8, so the gradient itself overflows fp16"))
        if state.is_world_process_zero:
            self.printer(f"step {step}: fp16 gradient overflow, step skipped by the loss scaler (it lowers its scale; "
                         f"the weights are unchanged)")

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None or not (control.should_save or control.should_evaluate or control.should_training_stop):
            return
        if not weights_finite(model):
            raise NonFiniteTraining(failure_message(
                args, state.global_step, "its optimizer step made trainable weights non-finite (the loss and the "
                "gradient norm were finite)"))

    def on_train_end(self, args, state, control, **kwargs):
        if self.skipped_steps and state.is_world_process_zero:
            self.printer(f"fp16: {len(self.skipped_steps)} step(s) skipped by the loss scaler (gradient overflow): "
                         f"{', '.join(map(str, self.skipped_steps[:20]))}{' ...' if len(self.skipped_steps) > 20 else ''}")


def local_part(tensor):
    """This process's own values of ``tensor``: the local shard of an FSDP2 DTensor, the partition of a
    DeepSpeed ZeRO-3 parameter (``ds_tensor``: between uses the parameter itself is empty), else the
    tensor. Collectives on a DTensor's values fail (no sharding strategy for all_reduce), and the
    finiteness checks below only need each rank's part: any_process then ORs the verdicts across ranks."""
    partition = getattr(tensor, "ds_tensor", None)
    if partition is not None:
        return partition
    to_local = getattr(tensor, "to_local", None)
    return to_local() if callable(to_local) else tensor


def gradient_norm(model):
    """The 2-norm of the trainable parameters' gradients held by this process (a 0-d fp32 tensor, 0
    when there are none; under FSDP2 the norm of this rank's shards, which is finite exactly when they
    are), computed in fp32 so that fp16 gradients whose norm exceeds fp16's range still give a finite norm."""
    import torch

    grads = [local_part(p.grad) for p in model.parameters() if p.requires_grad and p.grad is not None]
    if not grads:
        return torch.zeros(())
    norms = torch.stack([torch.linalg.vector_norm(g, dtype=torch.float32) for g in grads])
    return torch.linalg.vector_norm(norms)


def weights_finite(model) -> bool:
    """Whether every trainable parameter of ``model`` is finite, on every process (one synchronisation)."""
    import torch

    params = [local_part(p).detach() for p in model.parameters() if p.requires_grad]
    if not params:
        return True
    bad = ~torch.stack([torch.isfinite(p).all() for p in params]).all()
    return not any_process(bad.reshape(1))[0]


def any_process(flags) -> list[bool]:
    """``flags`` (a bool tensor) OR-ed across the processes of a distributed run, as Python bools."""
    import torch
    import torch.distributed as dist

    flags = flags.to(torch.int32)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return [bool(f) for f in flags.tolist()]


def failure_message(args, step: int, what: str) -> str:
    """The message of a non-finite step: what went wrong at ``step``, the checkpoint kept, the knobs
    to look at and how to go on. ``args`` are the trainer's arguments (named by their recipe keys)."""
    from tune.training.resume import latest_checkpoint

    run_dir = Path(args.output_dir).parent  # trainer_kwargs: checkpoints under run_dir/checkpoints
    kept = latest_checkpoint(run_dir)
    if kept is not None:
        saved = f"the last checkpoint, written before anything went non-finite, is kept: {kept}"
    else:
        saved = "no checkpoint had been written before it"
    precision = "fp16" if args.fp16 else "bf16" if args.bf16 else "fp32"
    return (
        f"training stopped at step {step}: {what}. Nothing from step {step} on was saved (no final/, no "
        f"manifest); {saved}. Likely causes: the learning rate (train.lr: {args.learning_rate:g}), the weight "
        f"decay (train.weight_decay: {args.weight_decay:g}), the precision (train.precision: {precision}; "
        f"fp16 and bf16 overflow sooner than fp32), gradient clipping (train.max_grad_norm: {args.max_grad_norm:g}; "
        f"0 is off), or the data around step {step} (an extreme or broken row). The same recipe stops at the "
        "same step again: change the cause, then start over with output.overwrite=true or another output.dir"
    )
