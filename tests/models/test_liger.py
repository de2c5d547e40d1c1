"""`model.liger: true`: numerics against plain transformers, the refusals, the plan lines.

The numerics run tests/models/liger_numerics.py in a subprocess per twin (Liger patches module
globals: every later model of the class in the process would run Liger), on CPU under Triton's
interpreter (``TRITON_INTERPRET=1``), one forward/backward each: ~1 min in all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tune.cli import main
from tune.recipe import load_recipe
from tune.models.liger_kernels import liger_plan
from tune.models.presets import get_preset

REPO = Path(__file__).resolve().parents[2]
HELPER = REPO / "tests" / "models" / "liger_numerics.py"
HEAVY = ("torch", "transformers", "trl", "peft", "liger_kernel", "triton")
INTERPRETER_ENV = {**os.environ, "TRITON_INTERPRET": "1", "LIGER_FUSED_MOE_AUTOTUNE": "0",
                   "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
# what each twin's patched model must contain and run, per its preset's layer count
EXPECTED = {
    "tiny-llm-jp-4-8b": ({"LigerRMSNorm": lambda n: 2 * n + 1, "LigerSwiGLUMLP": lambda n: n},
                         ("rms_norm", "rope", "swiglu"), "llama"),
    "tiny-llm-jp-4-32b-a3b": ({"LigerRMSNorm": lambda n: 4 * n + 1, "LigerExperts": lambda n: n},
                              ("rms_norm", "rope", "fused_moe_experts"), "qwen3_moe"),
}


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(EXPECTED))
def test_liger_matches_plain_transformers_loss_logits_and_gradients(preset, tmp_path):
    out = tmp_path / "numerics.json"
    done = subprocess.run([sys.executable, str(HELPER), preset, str(out)], env=INTERPRETER_ENV, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(out.read_text())
    modules, kernels, family = EXPECTED[preset]
    layers = get_preset(preset).config["num_hidden_layers"]
    assert result["rope_patched"][family]
    for mode in ("full", "lora"):
        entry = result[mode]
        assert entry["liger_modules"] == {name: count(layers) for name, count in modules.items()}, mode
        assert all(entry["kernel_calls"].get(kernel, 0) > 0 for kernel in kernels), entry["kernel_calls"]
        assert abs(entry["loss_liger"] - entry["loss_ref"]) <= 1e-5 * abs(entry["loss_ref"]), entry
        grads = entry["grads"]
        assert grads["tensors"] > 0 and not grads["zero_grad_tensors"] and not entry["missing_grads"], grads
        assert grads["max_rel_diff"] < 1e-4, grads
    assert result["full"]["logits_max_abs_diff"] < 1e-4 * result["full"]["logits_max_abs"]
    assert result["lora"]["lora_tensors"] == result["lora"]["grads"]["tensors"]  # only adapters train
    if family == "qwen3_moe":
        assert result["lora"]["expert_lora_tensors"] > 0  # peft target_parameters on the fused experts
        for mode in ("full", "lora"):
            aux_ref, aux_liger = result[mode]["aux_loss_ref"], result[mode]["aux_loss_liger"]
            assert aux_ref is not None and aux_ref > 0 and abs(aux_liger - aux_ref) < 1e-5 * aux_ref


GAP_PROBE = """
import torch
{shim}
from liger_kernel.ops.rms_norm import LigerRMSNormFunction
x, w = torch.randn(3, 32), torch.ones(32)
try:
    LigerRMSNormFunction.apply(x, w, 1e-6)
    print("RAN")
except Exception as err:
    print("FAILED", type(err).__name__, err)
"""
FLOAT_SHIM = """
import numpy as np, triton.language as tl
from triton.runtime import interpreter
_cvt = interpreter._implicit_cvt
interpreter._implicit_cvt = lambda a: (tl.tensor(interpreter.TensorHandle(np.array([a], dtype=np.float32), tl.float32), tl.float32)
                                       if isinstance(a, float) else _cvt(a))
"""


@pytest.mark.slow
def test_the_two_interpreter_gaps_the_numerics_shim_closes_are_still_there():
    """Pins the test-only shim of liger_numerics.py: when Triton fixes a gap, this fails, and the shim can go."""
    def probe(shim: str) -> str:
        done = subprocess.run([sys.executable, "-c", GAP_PROBE.format(shim=shim)], env=INTERPRETER_ENV,
                              capture_output=True, text=True, timeout=300)
        return done.stdout.strip().splitlines()[-1]

    assert "'float' object has no attribute 'to'" in probe("")
    assert "cannot convert None" in probe(FLOAT_SHIM)  # libdevice rsqrt is a stub (returns None) when interpreted
    rsqrt = "import liger_kernel.ops.rms_norm as r, triton.language as tl\nr.rsqrt = lambda x: tl.math.rsqrt(x)"
    assert probe(FLOAT_SHIM + rsqrt) == "RAN"


def test_liger_plan_names_the_kernels_of_each_architecture():
    llama = load_recipe("tiny/sft-lora", ["model.liger=true"]).recipe
    moe = load_recipe("tiny/sft-lora", ["model.liger=true", "model.name=tiny-llm-jp-4-32b-a3b"]).recipe
    assert liger_plan(llama)[0].startswith("Liger: rms_norm, rope, swiglu on LlamaForCausalLM; loss: TRL's chunked fused LM head")
    assert liger_plan(moe)[0].startswith("Liger: rms_norm, rope, fused MoE experts on Qwen3MoeForCausalLM; loss:")
    assert "fused_linear_cross_entropy stays off" in liger_plan(moe)[0]
    assert liger_plan(load_recipe("tiny/sft-lora").recipe) == []
    hub = load_recipe("tiny/sft-lora", ["model.liger=true", "model.name=someone/other-model"]).recipe
    assert liger_plan(hub) == [
        "Liger: kernels chosen when the model loads (architecture of someone/other-model unknown here); "
        "loss: TRL's chunked fused LM head (no full logits); Liger's fused_linear_cross_entropy stays off, "
        "TRL 1.16's trainers bypass model.forward"]


def test_validate_prints_the_liger_plan_without_importing_torch():
    code = ("import sys, tune.cli\n"
            "rc = tune.cli.main(['validate', 'tiny/sft-lora', 'model.liger=true', 'model.name=tiny-llm-jp-4-32b-a3b'])\n"
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
            "assert rc == 0 and not heavy, (rc, heavy)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "plan: Liger: rms_norm, rope, fused MoE experts on Qwen3MoeForCausalLM" in done.stderr


def _local_checkpoint(folder: Path, config: dict) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_validate_refuses_liger_for_an_architecture_it_has_no_patch_for(tmp_path, recipe_error):
    mistral = _local_checkpoint(tmp_path / "mistral", {"architectures": ["MistralForCausalLM"], "model_type": "mistral",
                                                        "hidden_act": "silu"})
    text = recipe_error("tiny/sft-full", [f"model.name={mistral}", "model.liger=true"])
    assert text == ("command-line override `model.liger=true`: model.liger: Liger kernels are wired up only for "
                    "LlamaForCausalLM, Qwen3MoeForCausalLM, and this model is a MistralForCausalLM; set model.liger=false")
    load_recipe("tiny/sft-full", [f"model.name={mistral}"])  # without Liger the same model is fine


def test_validate_refuses_liger_on_a_qwen3_moe_with_dense_layers_at_the_recipe_line(tmp_path, write_recipe, recipe_error):
    config = {**get_preset("tiny-llm-jp-4-32b-a3b").config, "mlp_only_layers": [0]}
    folder = _local_checkpoint(tmp_path / "moe-dense-first", config)
    recipe = write_recipe(f"""\
        base: {REPO / 'recipes' / 'tiny' / 'sft-full.yaml'}
        model:
          name: {folder}
          liger: true
        """)
    text = recipe_error(recipe)
    assert text.startswith(f"{recipe}:4:10: model.liger: Liger's Qwen3-MoE patch expects every layer to be MoE")
    assert text.endswith("set model.liger=false")


def test_validate_refuses_liger_on_moe_qlora_whose_experts_are_4_bit(recipe_error):
    text = recipe_error("tiny/moe-qlora", ["model.liger=true"])
    assert text.startswith("command-line override `model.liger=true`: model.liger: Liger's fused MoE kernel reads")
    assert load_recipe("tiny/qlora", ["model.liger=true"]).recipe.model.liger  # dense QLoRA: Liger patches forwards, its Linear4bit layers stay


def test_apply_liger_refuses_a_loaded_model_of_another_architecture(monkeypatch):
    """A hub id is only known once it loads: apply_liger refuses it before patching anything."""
    from transformers import MistralConfig, MistralForCausalLM

    from tune.errors import UserError
    from tune.models.liger_patch import apply_liger

    monkeypatch.setenv("TRITON_INTERPRET", "1")  # past the GPU check; nothing is patched before the refusal
    model = MistralForCausalLM(MistralConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                             num_attention_heads=2, num_key_value_heads=1))
    recipe = load_recipe("tiny/sft-full", ["model.liger=true", "model.name=someone/mistral"]).recipe
    with pytest.raises(UserError, match=r"^model.liger: someone/mistral: Liger kernels are wired up only for"):
        apply_liger(model, recipe)
    assert not any(m._get_name().startswith("Liger") for m in model.modules())


def test_run_without_a_gpu_refuses_liger_before_the_model_loads(tmp_path, monkeypatch, capsys):
    import torch
    import transformers

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    loads = []
    original = transformers.AutoModelForCausalLM.from_pretrained.__func__
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        classmethod(lambda cls, *a, **k: loads.append(a) or original(cls, *a, **k)))
    rc = main(["run", "tiny/sft-lora", "model.liger=true", "train.max_steps=1", f"output.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and loads == []
    assert err[-1] == ("error: model.liger: Liger's kernels need a CUDA GPU and this machine has none; "
                       "set model.liger=false (the run then uses more activation memory than planned)")
    assert not (tmp_path / "run" / "final").exists()
