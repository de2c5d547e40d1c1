"""The tiny twins' tokenizer: LLM-jp-4's special ids and behaviour in 4096 entries, reproducibly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tune.models.presets import BOS_ID, EOS_ID, PAD_ID, TINY_VOCAB_SIZE
from tune.models.tokenizer_tiny import (
    CORPUS_PATH,
    SPECIAL_TOKENS,
    _tiny_tokenizer_json,
    build_tiny_tokenizer,
    load_template_text,
    save_tiny_tokenizer,
)

LLMJP4_SPECIALS = [
    "<|unk|>", "<|startoftext|>", "<|return|>", "<|mask|>", "<|endoftext|>", "<|cls|>", "<|eod|>",
    "<|sep|>", "<|constrain|>", "<|channel|>", "<|start|>", "<|end|>", "<|message|>", "<|call|>",
]  # fmt: skip
# Text the corpus never saw: rare kanji, emoji, scripts, control characters.
UNSEEN = [
    "鬱蒼とした森で薔薇と檸檬と蒟蒻を見つけた。",
    "𠮷野家と髙島屋と𩸽",
    "😀👍🏽🎉 👩‍💻 I ❤️ Tokyo",
    "안녕하세요 我爱自然语言处理 مرحبا नमस्ते",
    "a\u0000b\u2028c\ufeffd\ue000",
    "  two leading spaces, a\ttab, and trailing   ",
    "\n\n",
    "▁",
]


def test_special_tokens_have_llmjp4_ids(tiny_tokenizer):
    assert list(SPECIAL_TOKENS) == LLMJP4_SPECIALS
    assert tiny_tokenizer.convert_ids_to_tokens(list(range(14))) == LLMJP4_SPECIALS
    assert (tiny_tokenizer.bos_token_id, tiny_tokenizer.eos_token_id, tiny_tokenizer.pad_token_id) == (BOS_ID, EOS_ID, PAD_ID)
    assert (tiny_tokenizer.unk_token_id, tiny_tokenizer.mask_token_id) == (0, 3)
    assert (tiny_tokenizer.cls_token_id, tiny_tokenizer.sep_token_id) == (5, 7)
    assert tiny_tokenizer.decode(list(range(14)), skip_special_tokens=True) == ""


def test_byte_pieces_follow_the_specials_then_learned_pieces_within_4096(tiny_tokenizer):
    assert tiny_tokenizer.convert_ids_to_tokens(list(range(14, 14 + 256))) == [f"<0x{b:02X}>" for b in range(256)]
    vocab = tiny_tokenizer.get_vocab()
    assert sorted(vocab.values()) == list(range(len(tiny_tokenizer)))  # no gaps, no duplicates
    assert 1000 < len(tiny_tokenizer) <= TINY_VOCAB_SIZE
    learned = tiny_tokenizer.convert_ids_to_tokens(list(range(270, len(tiny_tokenizer))))
    assert "▁" in learned and "▁the" in learned and "▁▁▁▁" in learned  # dummy prefix, whitespace pieces
    assert not any(piece.startswith("<0x") for piece in learned)


def test_any_text_encodes_without_unknown_ids_and_decodes_back(tiny_tokenizer):
    for text in UNSEEN:
        ids = tiny_tokenizer(text, add_special_tokens=False).input_ids
        assert 0 not in ids and all(i < len(tiny_tokenizer) for i in ids), text
        if "▁" not in text:  # "▁" is the space marker: it decodes as a space, as in LLM-jp-4
            assert tiny_tokenizer.decode(ids) == text
    # An emoji it never saw comes out as its four UTF-8 bytes.
    assert tiny_tokenizer("\U0001FAE8", add_special_tokens=False).input_ids[-4:] == [14 + b for b in "\U0001FAE8".encode()]


def test_learned_pieces_compress_the_kind_of_text_it_was_trained_on(tiny_tokenizer):
    text = CORPUS_PATH.read_text(encoding="utf-8")
    ids = tiny_tokenizer(text, add_special_tokens=False).input_ids
    assert len(ids) < 0.4 * len(text.encode("utf-8"))
    assert tiny_tokenizer.decode(ids) == text


def test_bos_is_prepended_and_eos_is_not(tiny_tokenizer):
    with_specials = tiny_tokenizer("今日は晴れ").input_ids
    without = tiny_tokenizer("今日は晴れ", add_special_tokens=False).input_ids
    assert with_specials == [BOS_ID, *without]
    assert EOS_ID not in with_specials and BOS_ID not in without


def test_special_tokens_in_text_are_never_split(tiny_tokenizer):
    ids = tiny_tokenizer("<|start|>user<|message|>やあ<|end|><|start|>assistant<|channel|>final<|message|>ok<|return|>").input_ids
    assert [i for i in ids if i < 14] == [BOS_ID, 10, 12, 11, 10, 9, 12, EOS_ID]


def test_chat_template_is_the_project_harmony_template(tiny_tokenizer):
    assert tiny_tokenizer.chat_template == load_template_text()
    conversation = [{"role": "user", "content": "こんにちは"}, {"role": "assistant", "content": "はい"}]
    ids = tiny_tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=False, conversation_start_date="2026-04-01")
    assert ids[0] == 10 and ids[-1] == EOS_ID  # <|start|>system ... <|return|>
    assert tiny_tokenizer.decode(ids) == tiny_tokenizer.apply_chat_template(
        conversation, tokenize=False, conversation_start_date="2026-04-01"
    )


def test_two_builds_are_byte_identical(tmp_path):
    first = build_tiny_tokenizer().backend_tokenizer.to_str()
    _tiny_tokenizer_json.cache_clear()  # retrain from scratch
    second = build_tiny_tokenizer().backend_tokenizer.to_str()
    assert first == second

    save_tiny_tokenizer(tmp_path / "a")
    _tiny_tokenizer_json.cache_clear()
    save_tiny_tokenizer(tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["chat_template.jinja", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_saved_folder_loads_in_plain_transformers_without_tune(tmp_path, tiny_tokenizer):
    save_tiny_tokenizer(tmp_path / "tok")
    config = json.loads((tmp_path / "tok" / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert "auto_map" not in config and config["add_bos_token"] is True and config["add_eos_token"] is False
    special_map = json.loads((tmp_path / "tok" / "special_tokens_map.json").read_text(encoding="utf-8"))
    assert special_map["pad_token"]["content"] == "<|endoftext|>"

    script = textwrap.dedent(
        """
        import json, sys
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=False)
        conversation = [{"role": "user", "content": "やあ"}, {"role": "assistant", "content": "hi", "thinking": "…"}]
        print(json.dumps({
            "tune_imported": any(m == "tune" or m.startswith("tune.") for m in sys.modules),
            "len": len(tok),
            "ids": tok("こんにちは world 😀").input_ids,
            "specials": [tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id],
            "template": tok.chat_template,
            "rendered": tok.apply_chat_template(conversation, tokenize=False, conversation_start_date="2026-04-01"),
        }))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "tok")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["tune_imported"] is False
    assert loaded["len"] == len(tiny_tokenizer)
    assert loaded["ids"] == tiny_tokenizer("こんにちは world 😀").input_ids
    assert loaded["ids"][0] == BOS_ID
    assert loaded["specials"] == [BOS_ID, EOS_ID, PAD_ID, 0]
    assert loaded["template"] == load_template_text()
    conversation = [{"role": "user", "content": "やあ"}, {"role": "assistant", "content": "hi", "thinking": "…"}]
    assert loaded["rendered"] == tiny_tokenizer.apply_chat_template(conversation, tokenize=False, conversation_start_date="2026-04-01")
