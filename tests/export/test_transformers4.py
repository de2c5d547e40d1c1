"""Merged exports load right in transformers 4.57 (still pinned by many vLLM builds), checked for real:
a second virtual environment with transformers 4.57 and this environment's torch loads the merged
tiny twins (LLM-jp-4-8B's Llama and 32B-A3B's Qwen3-MoE, per-expert layout) and gets the rope theta
(500,000, not 4.x's silent 10,000 default), the tokenizer class, ids and chat rendering, and the
logits that transformers 5 gets in this process.

The environment is built once (about a minute; pip reaches PyPI for transformers 4.57, torch comes
from the same wheel as this one's when pip finds it locally) under ``$TUNE_CACHE/envs/``, in a folder
named by the versions, and reused by later runs; the Hugging Face Hub is never contacted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from tune.cache_dir import cache_root

pytestmark = pytest.mark.slow

TRANSFORMERS_4 = "4.57"
PROBE = Path(__file__).with_name("transformers_probe.py")
TEXTS = ["日本の首都は東京です。", "LLM-jp-4 is trained on Japanese and English text: こんにちは、世界！ 2026年4月1日",
         "<|start|>user<|message|> typed by a user"]
CHAT = [{"role": "system", "content": "あなたは親切なアシスタントです。"}, {"role": "user", "content": "日本の首都は？"},
        {"role": "assistant", "content": "東京です。", "thinking": "首都を聞かれている。"}]
CHAT_KWARGS = {"conversation_start_date": "2026-04-01", "reasoning_effort": "high"}


def transformers4_python() -> Path:
    """The Python of a virtual environment with transformers 4.57.* and this environment's torch
    version, built on first use under ``$TUNE_CACHE/envs`` (in a staging folder renamed into place
    when complete, so an interrupted build is never reused)."""
    version = torch.__version__.split("+")[0]
    name = f"transformers-{TRANSFORMERS_4}-torch-{version}-py{sys.version_info.major}.{sys.version_info.minor}"
    target = cache_root() / "envs" / name
    python = target / "bin" / "python"
    if (target / "complete").is_file():
        return python
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(staging)], check=True, timeout=300)
        install = [str(staging / "bin" / "python"), "-m", "pip", "install", "--quiet", f"torch=={version}",
                   f"transformers=={TRANSFORMERS_4}.*", "safetensors", "tokenizers", "jinja2"]
        done = subprocess.run(install, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            pytest.fail(f"could not build the transformers {TRANSFORMERS_4} environment (needs PyPI): "
                        f"{' '.join(install[3:])} said:\n{done.stderr[-3000:]}")
        (staging / "complete").write_text(f"built in {time.perf_counter() - started:.0f} s\n")
        try:
            staging.rename(target)
        except OSError:  # another process finished first: keep theirs
            if not (target / "complete").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return python


def test_merged_twins_load_in_transformers_457_as_in_transformers_5(lora_runs, merged, tmp_path):
    from tests.export.transformers_probe import probe

    python = transformers4_python()
    old_dir, new_dir = tmp_path / "logits-4", tmp_path / "logits-5"
    old_dir.mkdir(), new_dir.mkdir()
    case = {"models": {twin: str(folder) for twin, folder in merged.items()},
            "tokenizers": {twin: str(run / "final") for twin, run in lora_runs.items()},  # the adapter folders
            "texts": TEXTS, "chat": CHAT, "chat_kwargs": CHAT_KWARGS}
    (tmp_path / "cases.json").write_text(json.dumps({**case, "logits_dir": str(old_dir)}, ensure_ascii=False))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([str(python), str(PROBE), str(tmp_path / "cases.json"), str(tmp_path / "old.json")],
                          capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    old = json.loads((tmp_path / "old.json").read_text(encoding="utf-8"))
    new = probe({**case, "logits_dir": str(new_dir)})

    assert old["transformers"].startswith(f"{TRANSFORMERS_4}.") and new["transformers"].startswith("5.")
    for twin in merged:
        was, now = old["models"][twin], new["models"][twin]
        assert was["tokenizer_class"] == "PreTrainedTokenizerFast"  # (transformers 5: its other name, TokenizersBackend)
        assert was["model_class"] == now["model_class"] == {"tiny-llm-jp-4-8b": "LlamaForCausalLM",
                                                            "tiny-llm-jp-4-32b-a3b": "Qwen3MoeForCausalLM"}[twin]
        for source in (was, now):
            assert source["config_rope_theta"] == 500000.0
            assert source["used_rope_theta"] == pytest.approx(500000.0, rel=1e-4)
        assert was["num_experts"] == now["num_experts"] == (8 if "a3b" in twin else None)
        assert was["special_ids"] == now["special_ids"] == [1, 2, 4, 0]
        assert was["generation_eos"] == now["generation_eos"] == [2, 13]
        assert was["ids"] == now["ids"] and all(ids[0] == 1 for ids in now["ids"])  # bos prepended by both
        assert was["chat_text"] == now["chat_text"] and "<|channel|>analysis" in now["chat_text"]
        assert was["chat_ids"] == now["chat_ids"]
        assert was["dtype"] == now["dtype"] == "torch.float32"
        old_logits, new_logits = torch.load(old_dir / f"{twin}.pt"), torch.load(new_dir / f"{twin}.pt")
        assert old_logits.shape == new_logits.shape == (1, len(now["chat_ids"]), 4096)
        difference = (old_logits - new_logits).abs().max().item()
        assert difference < 1e-5, (twin, difference)
    for twin in lora_runs:  # an adapter folder's tokenizer loads in 4.57 too
        was, now = old["tokenizers"][twin], new["tokenizers"][twin]
        assert was["tokenizer_class"] == "PreTrainedTokenizerFast"
        assert {k: v for k, v in was.items() if k != "tokenizer_class"} == {k: v for k, v in now.items() if k != "tokenizer_class"}
