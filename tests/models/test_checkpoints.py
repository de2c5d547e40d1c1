"""Where checkpoints come from: an unreachable hub fails at once; real assets load without remote code."""

import shutil
import subprocess
import sys
import time

import pytest

from tune.recipe import load_recipe
from tune.errors import UserError
from tune.models.checkpoints import Checkpoint, locate_checkpoint
from tune.models.loading import load_tokenizer


def test_hub_id_without_cache_and_offline_fails_at_once_naming_model_path(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    recipe = load_recipe("tiny/sft-lora", ["model.name=llm-jp-4-8b", "model.variant=instruct"]).recipe
    started = time.perf_counter()
    with pytest.raises(UserError) as info:
        locate_checkpoint(recipe.model)
    assert time.perf_counter() - started < 5
    message = str(info.value)
    assert "llm-jp/llm-jp-4-8b-instruct" in message and "model.path=" in message and "\n" not in message


def test_unreachable_hub_endpoint_is_detected_without_retries(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    recipe = load_recipe("tiny/sft-lora", ["model.name=someone/some-model"]).recipe
    started = time.perf_counter()
    with pytest.raises(UserError, match="cannot be reached"):
        locate_checkpoint(recipe.model)
    assert time.perf_counter() - started < 5


def test_cli_prints_one_line_and_exits_2_for_an_offline_hub_id(tmp_path, repo_root):
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "c"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "tune", "run", "tiny/sft-lora", "model.name=llm-jp/llm-jp-4-8b-thinking",
         f"output.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, cwd=repo_root, env=env, timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: model llm-jp/llm-jp-4-8b-thinking")


def test_real_checkpoint_tokenizer_loads_without_remote_code(llmjp4_dir, llmjp4_model_file, tmp_path):
    """A checkpoint folder as LLM-jp publishes it (custom tokenizer class in auto_map, no tokenizer.json)."""
    import sentencepiece

    folder = tmp_path / "llm-jp-4-8b-instruct"
    shutil.copytree(llmjp4_dir, folder)
    assert "auto_map" in (folder / "tokenizer_config.json").read_text()
    recipe = load_recipe("tiny/sft-lora").recipe
    tokenizer = load_tokenizer(recipe, Checkpoint(folder, "llm-jp/llm-jp-4-8b-instruct", None))
    assert len(tokenizer) == 196_608
    assert tokenizer.chat_template == (llmjp4_dir / "chat_template.jinja").read_text()
    text = "LLM-jp-4 は日本語と English を扱います。"
    sp = sentencepiece.SentencePieceProcessor(model_file=str(llmjp4_model_file))
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == sp.encode(text)
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "こんにちは"}], tokenize=False,
                                             add_generation_prompt=True, conversation_start_date="2026-04-01")
    assert rendered.endswith("<|start|>user<|message|>こんにちは<|end|><|start|>assistant")
