"""Saved folders load right for every consumer: config.json carries transformers 4.x's keys equal to
transformers 5's, tokenizer_config.json names a class both load and no load flags, and the
SentencePiece model travels as tokenizer.model when the source tokenizer had one.
(That transformers 4.57 really loads the merged twins right: test_transformers4.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tune.training.consumer_compat import (
    add_legacy_config_keys,
    copy_sentencepiece_model,
    make_portable,
    portable_tokenizer_config,
)

TWINS = ("tiny-llm-jp-4-8b", "tiny-llm-jp-4-32b-a3b")
PROBE_TEXTS = ("日本の首都は東京です。", "Tokyo is the capital of Japan; 2026年4月1日", "def f(x):\n    return x * 2  # 二倍")


def saved_v5_config(model_type: str, **keys) -> dict:
    """config.json as transformers 5 writes it for a config built with ``keys``."""
    from transformers import AutoConfig

    return json.loads(AutoConfig.for_model(model_type, **keys).to_json_string(use_diff=False))


def test_legacy_keys_equal_the_new_ones_and_transformers5_reads_them_back_unchanged():
    from transformers import AutoConfig

    for model_type, keys in [("llama", {"rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}}),
                             ("qwen3_moe", {"num_experts": 8, "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}})]:
        saved = saved_v5_config(model_type, dtype="bfloat16", **keys)
        assert "rope_theta" not in saved and "torch_dtype" not in saved  # what transformers 5 leaves out
        legacy = add_legacy_config_keys(saved)
        assert legacy["rope_theta"] == saved["rope_parameters"]["rope_theta"] == 500000.0
        assert legacy["torch_dtype"] == saved["dtype"] == "bfloat16"
        assert "rope_scaling" not in legacy  # default rope: 4.x's default (null) is right
        if model_type == "qwen3_moe":
            assert legacy["num_experts"] == saved["num_local_experts"] == 8
        reread = AutoConfig.for_model(**legacy)
        assert reread.rope_parameters == {"rope_type": "default", "rope_theta": 500000.0}
        assert str(reread.dtype) == "torch.bfloat16"
        assert {k: v for k, v in legacy.items() if k in saved} == saved  # nothing of transformers 5's changed


def test_a_scaled_rope_is_also_written_as_4x_rope_scaling():
    from transformers import AutoConfig

    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    saved = saved_v5_config("llama", rope_parameters=dict(rope))
    legacy = add_legacy_config_keys(saved)
    assert legacy["rope_theta"] == 500000.0
    assert legacy["rope_scaling"] == {k: v for k, v in saved["rope_parameters"].items() if k != "rope_theta"}
    assert AutoConfig.for_model(**legacy).rope_parameters == saved["rope_parameters"]


def test_tokenizer_config_names_a_class_4x_and_5x_both_load_and_drops_the_load_flags():
    written = {"tokenizer_class": "TokenizersBackend", "is_local": True, "local_files_only": True,
               "bos_token": "<|startoftext|>", "backend": "tokenizers"}
    assert portable_tokenizer_config(written) == {"tokenizer_class": "PreTrainedTokenizerFast",
                                                  "bos_token": "<|startoftext|>", "backend": "tokenizers"}
    assert portable_tokenizer_config({"tokenizer_class": "LlamaTokenizerFast"})["tokenizer_class"] == "LlamaTokenizerFast"


@pytest.fixture
def sentencepiece_bytes() -> bytes:
    from tune.models.tokenizer_tiny import tiny_sentencepiece_model

    return tiny_sentencepiece_model()


def test_sentencepiece_model_is_copied_as_tokenizer_model_whatever_its_name(tmp_path, sentencepiece_bytes):
    source, out = tmp_path / "source", tmp_path / "out"
    source.mkdir(), out.mkdir()
    (source / "llm-jp-tokenizer_ver4.0_alpha1.0.model").write_bytes(sentencepiece_bytes)  # LLM-jp-4's own name
    assert copy_sentencepiece_model([tmp_path / "missing", None, source], out) == source / "llm-jp-tokenizer_ver4.0_alpha1.0.model"
    assert (out / "tokenizer.model").read_bytes() == sentencepiece_bytes

    (source / "other.model").write_bytes(b"x")  # two models, neither named tokenizer.model: which one is unknown
    assert copy_sentencepiece_model([source], tmp_path / "source") is None
    (source / "tokenizer.model").write_bytes(sentencepiece_bytes)  # the conventional name decides
    assert copy_sentencepiece_model([source], out) == source / "tokenizer.model"


def test_no_tokenizer_model_is_made_up_when_the_source_had_none(tmp_path):
    from tune.models.tokenizer_tiny import save_tiny_tokenizer

    source, out = tmp_path / "source", tmp_path / "out"
    save_tiny_tokenizer(source)  # tokenizer.json and friends, no SentencePiece model
    save_tiny_tokenizer(out)
    assert make_portable(out, [source]) is None
    assert not (out / "tokenizer.model").exists()
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast" and not {"is_local", "local_files_only"} & set(config)


def sentencepiece_ids(model: Path, text: str) -> list[int]:
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=str(model)).encode(text)


@pytest.mark.slow
@pytest.mark.parametrize("twin", TWINS)
def test_merged_folder_config_carries_4x_keys_equal_to_5x_ones(merged, twin):
    config = json.loads((merged[twin] / "config.json").read_text())
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] == 500000.0
    assert config["torch_dtype"] == config["dtype"] == "float32"
    if twin == "tiny-llm-jp-4-32b-a3b":
        assert config["num_experts"] == config["num_local_experts"] == 8


@pytest.mark.slow
@pytest.mark.parametrize("twin", TWINS)
def test_merged_and_adapter_folders_carry_a_portable_tokenizer_and_the_twins_sentencepiece_model(lora_runs, merged, twin):
    from transformers import AutoTokenizer

    from tune.export.run_folder import locate_base, read_run

    base = locate_base(read_run(lora_runs[twin]))
    assert (base / "tokenizer.model").is_file()  # the source (the twin checkpoint) has one
    for folder in (merged[twin], lora_runs[twin] / "final"):
        config = json.loads((folder / "tokenizer_config.json").read_text())
        assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
        assert not {"is_local", "local_files_only"} & set(config)
        assert (folder / "tokenizer.model").read_bytes() == (base / "tokenizer.model").read_bytes()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        for text in PROBE_TEXTS:  # what a GGUF converter reads encodes as tokenizer.json does
            assert sentencepiece_ids(folder / "tokenizer.model", text) == tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.slow
def test_full_runs_final_folder_config_carries_the_4x_keys(full_run):
    config = json.loads((full_run / "final" / "config.json").read_text())
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] == 500000.0
    assert config["torch_dtype"] == config["dtype"]
    assert (full_run / "final" / "tokenizer.model").is_file()
