"""`tune plan` on continued pre-training recipes (tune.plan_cpt): LLM-jp's 8B CPT is 500 steps of
512 x 4,096 tokens, and its time on rt_HF nodes follows from the model FLOPs count; LLM-jp's own
figure stands beside it, labelled theirs."""

from __future__ import annotations

import json

import pytest

from tune.cli import main
from tune.models.gpus import GPUS
from tune.plan import plan_report
from tune.recipe import load_recipe

H200 = GPUS["H200"].bf16_flops


def plan(name, *overrides, **kw):
    return plan_report(load_recipe(name, list(overrides)), **kw)


def flops_per_token_8b(sequence: int) -> float:
    """6 x the matmul parameters a token goes through + causal attention, written out from the 8B's shape
    (hidden 4096, 32 layers, 32 heads x 128, 8 KV heads, FFN 14336, vocab 196,608, untied head)."""
    layer = 4096 * 4096 + 2 * 4096 * 1024 + 4096 * 4096 + 3 * 4096 * 14336
    matmul = 32 * layer + 196_608 * 4096
    return 6 * matmul + 6 * 32 * 4096 * sequence


def test_the_8b_cpt_plan_is_500_steps_of_2_097_152_tokens():
    report = plan("llm-jp-4-8b/cpt")
    assert (report.global_batch, report.tokens_per_step, report.tokens_per_step_exact) == (512, 2_097_152, True)
    assert (report.steps, report.steps_source) == (500, "train.max_steps")
    assert report.cpt.total_tokens == 1_048_576_000 == 500 * 512 * 4096
    lines = report.lines()
    assert "tokens per step: 2,097,152 (global batch 512 x data.max_seq_len 4,096)" in lines
    assert "total tokens: 1,048,576,000 (1.05e+09)" in lines
    assert report.flops_per_token == flops_per_token_8b(4096)


def test_hours_on_rt_hf_nodes_follow_the_flops_count_at_the_stated_mfu():
    report = plan("llm-jp-4-8b/cpt", mfu=0.4)
    per_gpu = 0.4 * H200 / flops_per_token_8b(4096)
    assert report.cpt.tokens_per_gpu_s == pytest.approx(per_gpu)
    for nodes in (1, 2, 4, 8):
        assert report.cpt.hours_on(nodes) == pytest.approx(1_048_576_000 / (nodes * 8 * per_gpu) / 3600)
    assert report.cpt.hours_on(2) * 3600 == pytest.approx(report.wall_seconds)  # the recipe's 2 nodes
    line = next(line for line in report.lines() if line.startswith("time at MFU 40%"))
    assert f"2 nodes {report.cpt.hours_on(2):.1f} h (this recipe)" in line and "rt_HF" in line
    # the tokens/s a 24-hour job needs (the stated wall clock), for the job and per GPU
    needed = next(line for line in report.lines() if line.startswith("to finish in 24 h"))
    assert f"{1_048_576_000 / 86400:,.0f} tokens/s for the job" in needed
    # phase 1: 1,000,000 steps on 64 nodes, in days
    phase1 = plan("llm-jp-4-8b/pretrain-phase1", mfu=0.4)
    days = 1_000_000 * 2_097_152 / (64 * 8 * per_gpu) / 86400
    assert phase1.cpt.hours_on(64) / 24 == pytest.approx(days)
    assert f"64 nodes {days:.1f} days (this recipe)" in next(line for line in phase1.lines() if line.startswith("time at"))


def test_llmjps_own_figure_stands_beside_ours_labelled_theirs():
    lines = plan("llm-jp-4-8b/cpt").lines()
    theirs = next(line for line in lines if line.startswith("LLM-jp's figure"))
    assert "theirs, not measured by tune" in theirs and "ft-llm-2026" in theirs
    assert "~6,944 tokens/s per GPU" in theirs  # 1e9 tokens / (5 h x 8 GPUs)
    assert "5.2 h on 1 node, 2.6 h on 2" in theirs
    # it is a figure of the 8B: other models' plans do not print it
    assert not any(line.startswith("LLM-jp's figure") for line in plan("llm-jp-4-32b-a3b/pretrain").lines())


def test_memory_is_planned_as_for_full_training():
    report = plan("llm-jp-4-8b/cpt")
    sft = plan("llm-jp-4-8b/sft-full", "launch.nodes=2", "launch.processes_per_node=8", "launch.strategy=fsdp2",
               "train.per_device_batch_size=4", "train.grad_accumulation=8", "train.gradient_checkpointing=true")
    assert report.memory.trainable == report.memory.parameters == 8_590_200_832
    assert report.memory.total == sft.memory.total and report.fits


def test_without_max_steps_the_plan_says_to_set_it(tmp_path):
    report = plan("llm-jp-4-8b/cpt", "train.max_steps=null", f"data.corpus_root={tmp_path}")
    assert report.steps is None and report.wall_seconds is None
    lines = report.lines()
    assert any(line.startswith("steps: unknown (set train.max_steps") for line in lines), lines
    assert "total tokens: unknown until the steps are (set train.max_steps)" in lines


def test_without_max_steps_the_epochs_of_readable_corpora_give_the_steps():
    from tune.resources import resolve_tune_path

    tokens = {name: json.loads(resolve_tune_path(f"samples/corpora/tiny-{name}.manifest.json").read_text())["tokens"]
              for name in ("ja", "en", "code")}
    report = plan("tiny/cpt", "train.max_steps=null", "train.epochs=2")
    # 2 passes over the three corpora (repeat 1 each) in windows of 256, global batch 8, rounded down
    assert report.steps == 2 * sum(tokens.values()) // 256 // 8
    assert f"({sum(tokens.values()):,} tokens in their .idx, before repeats)" in report.steps_source
    assert report.cpt.total_tokens == report.steps * 8 * 256
    moe = plan("tiny/moe-pretrain", "train.max_steps=null", "train.epochs=1")  # code x8, ja x4, en x1
    assert moe.steps == (8 * tokens["code"] + 4 * tokens["ja"] + tokens["en"]) // 256 // 8


def test_plan_json_of_a_cpt_recipe_carries_its_figures(capsys):
    assert main(["plan", "llm-jp-4-8b/cpt", "--json", "--mfu", "0.35"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["tokens_per_step"] == 2_097_152 and figures["steps"] == 500
    assert figures["cpt"]["total_tokens"] == 1_048_576_000
    assert figures["cpt"]["llmjp_tokens_per_gpu_s"] == pytest.approx(1e9 / (5 * 3600 * 8))


@pytest.mark.parametrize("name", ["tiny/cpt", "tiny/moe-pretrain", "llm-jp-4-32b-a3b/pretrain"])
def test_every_cpt_recipe_plans_without_error(name):
    report = plan(name)
    assert report.steps and report.cpt.total_tokens == report.steps * report.tokens_per_step
    assert report.memory is not None and report.fits


# ---- benchmarks/gpu/cpt_throughput.py: the GPU script counts as the plan does ------------------------

def throughput_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu" / "cpt_throughput.py"
    spec = importlib.util.spec_from_file_location("cpt_throughput", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_gpu_script_times_the_8b_shape_and_counts_its_flops_as_the_plan_does():
    from tune.models.flops import flops_per_token
    from tune.models.presets import PRESETS

    script = throughput_script()
    real = PRESETS["llm-jp-4-8b"].config
    assert {key: real[key] for key in script.CONFIG_8B} == script.CONFIG_8B
    assert script.flops_per_token(script.CONFIG_8B, 32, 4096) == flops_per_token(real, 4096, True)
    assert script.flops_per_token(script.CONFIG_8B, 32, 4096) == flops_per_token_8b(4096)
    assert script.PEAKS["H200"] == H200
    # 16 bytes of fp32 state per parameter: the 32 layers cannot fit one H200; a depth between 8 and 20 does
    assert 8 <= script.auto_layers(script.CONFIG_8B, 139 * 2**30, 1, 4096, False) < 20


@pytest.mark.slow
def test_the_gpu_script_runs_on_the_cpu_in_its_tiny_mode(tmp_path):
    out = tmp_path / "figures.json"
    assert throughput_script().main(["--tiny", "--device", "cpu", "--layers", "1,2", "--seq", "64", "--steps", "1",
                                     "--warmup", "1", "--cases", "mb1", "--out", str(out)]) == 0
    figures = json.loads(out.read_text())
    case = figures["cases"][0]
    assert [d["layers"] for d in case["depths"]] == [1, 2] and all(d["tokens_per_s"] > 0 for d in case["depths"])
    assert case["full_step_s"] == pytest.approx(case["rest_s"] + 32 * case["per_layer_s"])
