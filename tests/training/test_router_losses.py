"""The MoE router z-loss (tune.training.router_losses) on the tiny LLM-jp-4 32B-A3B twin: its value is the closed
form of the router logits, its gradient reaches the routers with weight coef whatever the gradient accumulation,
and it is logged apart from the LM loss and the aux loss by tune's trainers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

MOE = "tiny-llm-jp-4-32b-a3b"
AUX, Z = 0.01, 1e-3


def moe_model():
    from transformers import AutoModelForCausalLM

    from tune.models.presets import get_preset
    from tune.models.tiny_twins import ensure_twin

    return AutoModelForCausalLM.from_pretrained(ensure_twin(get_preset(MOE)), dtype=torch.float32,
                                                output_router_logits=True, router_aux_loss_coef=AUX)


def windows(count: int, length: int = 16, seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(3, 1000, (length,), generator=generator)} for _ in range(count)]


def collate(rows: list[dict]) -> dict:
    ids = torch.stack([row["input_ids"] for row in rows])
    return {"input_ids": ids, "labels": ids.clone()}


def by_hand(router_logits, mask=None) -> torch.Tensor:
    """sum over layers of the mean over (unpadded) tokens of log(sum exp(logits))^2, written out."""
    total = torch.zeros(())
    for logits in router_logits:
        lse_squared = torch.log(torch.exp(logits.double()).sum(-1)) ** 2
        keep = torch.ones_like(lse_squared) if mask is None else mask.reshape(-1).double()
        total = total + (lse_squared * keep).sum() / keep.sum()
    return total


def test_the_z_loss_is_the_closed_form_of_the_pre_softmax_router_logits_and_skips_padding():
    from tune.training.router_losses import RouterLogitsCapture, router_z_loss

    model = moe_model()
    batch = collate(windows(2))
    mask = torch.ones_like(batch["input_ids"])
    mask[1, 10:] = 0  # padding at the end of the second row
    capture = RouterLogitsCapture(model)
    capture.start()
    outputs = model(**batch, attention_mask=mask)
    captured = capture.stop()
    # what tune reads is what transformers returns as router_logits: one [tokens, experts] tensor per MoE layer
    assert len(captured) == len(outputs.router_logits) == 2
    assert all(c.shape == (32, 8) and torch.equal(c, r) for c, r in zip(captured, outputs.router_logits))
    assert all(not torch.allclose(c.softmax(-1).sum(-1), c.sum(-1)) for c in captured)  # pre-softmax: rows do not sum to 1
    assert router_z_loss(captured, Z).item() == pytest.approx(Z * by_hand(captured).item(), rel=1e-6)
    padded = router_z_loss(captured, Z, mask).item()
    assert padded == pytest.approx(Z * by_hand(captured, mask).item(), rel=1e-6)
    assert padded != pytest.approx(router_z_loss(captured, Z).item(), rel=1e-6)


def test_the_z_loss_gradient_reaches_every_router_and_a_zero_coefficient_adds_nothing():
    from tune.training.router_losses import RouterLogitsCapture, router_z_loss

    model = moe_model()
    capture = RouterLogitsCapture(model)
    capture.start()
    model(**collate(windows(2)))
    logits = capture.stop()
    router_z_loss(logits, Z).backward(retain_graph=True)
    routers = {name: p.grad for name, p in model.named_parameters() if name.endswith("mlp.gate.weight")}
    assert sorted(routers) == ["model.layers.0.mlp.gate.weight", "model.layers.1.mlp.gate.weight"]
    assert all(grad is not None and grad.abs().sum() > 0 for grad in routers.values())
    model.zero_grad()
    zero = router_z_loss(logits, 0.0)
    zero.backward()
    assert zero.item() == 0.0 and all(p.grad is None or not p.grad.any() for p in model.parameters())


class GradientsAtStep:
    """A callback keeping each parameter's gradient as the optimizer is about to step."""

    def __init__(self):
        from transformers import TrainerCallback

        outer = self

        class Callback(TrainerCallback):
            def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
                outer.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}

        self.callback = Callback()
        self.grads: dict[str, torch.Tensor] = {}


def one_step(tmp_path: Path, *, batch: int, accumulation: int, z_coef: float, checkpointing: bool = False) -> dict:
    """Gradients of one optimizer step of tune's CptTrainer over the same 2 windows."""
    from transformers import TrainingArguments

    from tune.training.trainers import CptTrainer

    model = moe_model()
    seen = GradientsAtStep()
    args = TrainingArguments(output_dir=str(tmp_path / f"b{batch}-a{accumulation}-z{z_coef}-{checkpointing}"), max_steps=1,
                             per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation,
                             activation_checkpointing=checkpointing,
                             learning_rate=1e-3, max_grad_norm=0.0, report_to="none", use_cpu=True,
                             remove_unused_columns=False, save_strategy="no", disable_tqdm=True, seed=0)
    trainer = CptTrainer(model=model, args=args, train_dataset=windows(2), data_collator=collate,
                         callbacks=[seen.callback], router_z_loss_coef=z_coef)
    trainer.train()
    return seen.grads


def expected_gradients(micro_batches: list[list[dict]], z_coef: float) -> dict:
    """By hand: the gradient of the mean over micro batches of (LM loss + AUX x aux loss + z_coef x z-loss), each
    micro batch's loss as transformers' forward gives it (LM + its own AUX x aux) plus the z-loss of its logits."""
    from tune.training.router_losses import RouterLogitsCapture, router_z_loss

    model = moe_model()
    capture = RouterLogitsCapture(model)
    total = 0
    for rows in micro_batches:
        capture.start()
        loss = model(**collate(rows)).loss
        total = total + (loss + z_coef * router_z_loss(capture.stop(), 1.0)) / len(micro_batches)
    total.backward()
    return {name: p.grad for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.slow
def test_the_z_loss_and_aux_loss_weigh_coef_whatever_the_gradient_accumulation(tmp_path):
    """One optimizer step over the same 2 windows, as 1 micro batch of 2 or 2 accumulated micro batches of 1: the
    gradient is the mean over micro batches of LM + AUX x aux + Z x z (Megatron's 1 / (micro batches x data-parallel
    size) for the router losses), so the z-loss's part of it is the same in both (its per-token mean splits over
    equal rows; the aux loss's does not: it is a product of per-batch fractions, computed per micro batch)."""
    rows = windows(2)
    whole = one_step(tmp_path, batch=2, accumulation=1, z_coef=Z)
    accumulated = one_step(tmp_path, batch=1, accumulation=2, z_coef=Z)
    for got, micro_batches in ((whole, [rows]), (accumulated, [[rows[0]], [rows[1]]])):
        expected = expected_gradients(micro_batches, Z)
        assert got.keys() == expected.keys() and "model.layers.1.mlp.gate.weight" in got
        for name in got:
            torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-8, msg=name)

    # the z-loss's own part (a coefficient large enough that float32 rounding of the rest does not hide it)
    def z_part(batch, accumulation):
        with_z = one_step(tmp_path, batch=batch, accumulation=accumulation, z_coef=1.0)
        without = one_step(tmp_path, batch=batch, accumulation=accumulation, z_coef=0.0)
        return {name: with_z[name] - without[name] for name in ("model.layers.0.mlp.gate.weight", "model.layers.1.mlp.gate.weight")}

    z_whole, z_accumulated = z_part(2, 1), z_part(1, 2)
    for name, part in z_whole.items():
        assert part.abs().sum() > 0
        torch.testing.assert_close(z_accumulated[name], part, rtol=1e-4, atol=1e-9, msg=name)


@pytest.mark.slow
def test_under_activation_checkpointing_the_router_losses_weigh_the_same(tmp_path):
    """Recomputed activations (`train.gradient_checkpointing`) rerun the routers in backward; the z-loss still
    counts each router once, with its gradient."""
    got = one_step(tmp_path, batch=2, accumulation=1, z_coef=Z, checkpointing=True)
    expected = expected_gradients([windows(2)], Z)
    for name in ("model.layers.0.mlp.gate.weight", "model.layers.1.mlp.gate.weight", "model.embed_tokens.weight"):
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-8, msg=name)


@pytest.mark.slow
def test_a_cpt_trainer_logs_the_lm_aux_and_z_losses_apart_and_they_add_up(tmp_path):
    from transformers import TrainingArguments

    from tune.training.progress import ProgressCallback
    from tune.training.router_losses import RouterLogitsCapture, router_z_loss
    from tune.training.trainers import CptTrainer

    rows = windows(6, seed=1)
    first = collate(rows[:2])
    reference = moe_model()  # the model as the first step sees it
    capture = RouterLogitsCapture(reference)
    capture.start()
    outputs = reference(**first)
    logits = capture.stop()
    lm_loss = outputs.loss.item() - AUX * outputs.aux_loss.item()  # transformers' forward adds coef x aux

    progress = ProgressCallback(tmp_path / "metrics.jsonl", printer=lambda line: None, aux_loss_coef=AUX, z_loss_coef=Z)
    args = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=3, per_device_train_batch_size=2,
                             learning_rate=1e-3, logging_steps=1, logging_first_step=True, report_to="none",
                             use_cpu=True, remove_unused_columns=False, save_strategy="no", disable_tqdm=True)
    trainer = CptTrainer(model=moe_model(), args=args, train_dataset=rows, data_collator=collate,
                         callbacks=[progress], router_z_loss_coef=Z)
    trainer._get_train_sampler = lambda *a, **k: torch.utils.data.SequentialSampler(rows)  # step 1 reads rows 0, 1
    trainer.train()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    for record in records:
        assert all(math.isfinite(record[key]) for key in ("loss", "aux_loss", "z_loss", "lm_loss"))
        assert record["lm_loss"] == pytest.approx(record["loss"] - AUX * record["aux_loss"] - Z * record["z_loss"])
    step1 = records[0]
    assert step1["z_loss"] == pytest.approx(router_z_loss(logits, 1.0).item(), rel=1e-5)
    assert step1["aux_loss"] == pytest.approx(outputs.aux_loss.item(), rel=1e-5)
    assert step1["lm_loss"] == pytest.approx(lm_loss, rel=1e-5)  # the logged loss holds each term once


@pytest.mark.slow
def test_sft_on_the_moe_twin_logs_the_z_loss_apart_and_without_it_logs_none(tmp_path):
    from tune.methods.run import run_recipe
    from tune.recipe import load_recipe

    def run(z: float) -> list[dict]:
        folder = tmp_path / f"z{z}"
        recipe = tmp_path / f"z{z}.yaml"
        recipe.write_text(f"model: {{name: {MOE}, router_z_loss_coef: {z}}}\n"
                          "data: {datasets: [{path: tune:samples/demo-chat.jsonl}], max_seq_len: 256}\n"
                          "train: {max_steps: 2, per_device_batch_size: 2, precision: fp32, warmup_steps: 0}\n"
                          f"output: {{dir: {folder}}}\nlogging: {{logging_steps: 1}}\n")
        run_recipe(load_recipe(recipe))
        return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]

    with_z = run(Z)
    assert [r["step"] for r in with_z] == [1, 2]
    for record in with_z:
        assert math.isfinite(record["z_loss"]) and record["z_loss"] > 0 and math.isfinite(record["aux_loss"])
        assert record["lm_loss"] == pytest.approx(record["loss"] - AUX * record["aux_loss"] - Z * record["z_loss"])
    without = run(0.0)
    assert all("z_loss" not in r and "aux_loss" in r for r in without)
    # the first step's LM loss is the same model on the same batch: the z-loss only adds its own term
    assert without[0]["lm_loss"] == pytest.approx(with_z[0]["lm_loss"], rel=1e-6)
    assert with_z[0]["loss"] - without[0]["loss"] == pytest.approx(Z * with_z[0]["z_loss"], rel=1e-3)


def megatron_aux_and_z(logits_per_layer, top_k, num_experts):
    """Megatron-Core's own per-layer losses (megatron.core.transformer.moe.moe_utils), added over layers as its
    routers attach them: the `aux_loss` type's switch_load_balancing_loss_func and z_loss_func, coefficient 1."""
    from megatron.core.transformer.moe.moe_utils import switch_load_balancing_loss_func, z_loss_func

    aux = z = 0
    for logits in logits_per_layer:
        probs = torch.softmax(logits, -1)
        chosen = torch.zeros_like(probs, dtype=torch.bool).scatter(1, torch.topk(probs, top_k, -1).indices, True)
        aux = aux + switch_load_balancing_loss_func(probs, chosen.sum(0), logits.shape[0], top_k, num_experts, 1.0)
        z = z + z_loss_func(logits, 1.0)
    return aux, z


@pytest.mark.parametrize("layers, top_k", [(32, 8), (8, 2), (2, 6)])
def test_transformers_aux_loss_pushes_each_router_k_over_l_times_megatrons_and_the_z_loss_is_megatrons(layers, top_k):
    """What docs/moe-losses.md says the coefficients mean: where every layer routes alike, the gradient of
    transformers' aux loss on a router is top_k / layers times Megatron's per-layer sum (a quarter for
    LLM-jp-4 32B-A3B: k 8, L 32); tune's z-loss is Megatron's z-loss summed over layers."""
    from transformers.models.qwen3_moe.modeling_qwen3_moe import load_balancing_loss_func

    from tune.training.router_losses import router_z_loss

    experts = 16
    shared = torch.randn(64, experts, generator=torch.Generator().manual_seed(layers))
    ours = [shared.clone().requires_grad_() for _ in range(layers)]
    theirs = [shared.clone().requires_grad_() for _ in range(layers)]
    load_balancing_loss_func(tuple(ours), experts, top_k).backward()
    megatron_aux, megatron_z = megatron_aux_and_z(theirs, top_k, experts)
    megatron_aux.backward()
    torch.testing.assert_close(ours[0].grad, theirs[0].grad * top_k / layers, rtol=1e-4, atol=1e-9)
    assert router_z_loss(ours, Z).item() == pytest.approx(Z * megatron_z.item(), rel=1e-6)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_weigh_the_router_losses_as_one_process_accumulating_two_micro_batches(tmp_path):
    """2 processes of 1 window each (DDP on gloo): the routers' gradient is the mean over the 2 micro batches of
    LM + AUX x aux + Z x z, as for 2 accumulated micro batches on one process; transformers' own handling would
    weigh the aux loss twice (`average_tokens_across_devices` multiplies the loss by the process count)."""
    from tests.distributed.launching import torchrun, worker_env
    from tune.cache_dir import cache_root
    from tune.models.presets import get_preset
    from tune.models.tiny_twins import ensure_twin

    ensure_twin(get_preset(MOE))  # built once, in the cache the workers read
    out = tmp_path / "grads.pt"
    torchrun(str(Path(__file__).with_name("router_loss_worker.py")), [str(out)], worker_env(cache_root()),
             log=tmp_path / "log")
    got = torch.load(out)
    rows = windows(2)
    expected = expected_gradients([[rows[0]], [rows[1]]], Z)
    assert sorted(got) == ["model.layers.0.mlp.gate.weight", "model.layers.1.mlp.gate.weight"]
    for name, grad in got.items():
        torch.testing.assert_close(grad, expected[name], rtol=1e-4, atol=1e-8, msg=name)


@pytest.mark.parametrize("model, method, said", [
    ("tiny-llm-jp-4-8b", "sft", "tiny-llm-jp-4-8b is a dense model without a router"),
    (MOE, "dpo", "the router z-loss is added to sft and cpt training, not to dpo"),
])
def test_a_z_loss_without_a_router_or_on_dpo_is_refused_with_the_key(write_recipe, recipe_error, model, method, said):
    text = recipe_error(write_recipe(f"model: {{name: {model}, router_z_loss_coef: 0.001}}\nmethod: {{name: {method}}}\n"
                                     "data: {datasets: [{path: tune:samples/demo-chat.jsonl}]}\n"))
    assert "recipe.yaml:1:" in text and "model.router_z_loss_coef" in text and said in text
