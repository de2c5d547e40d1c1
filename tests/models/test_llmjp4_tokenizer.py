"""LLM-jp-4's fast tokenizer, built from its SentencePiece model, encodes exactly as SentencePiece.

Reference: ``sentencepiece.SentencePieceProcessor`` on the same ``.model`` (the encoder the
model's pre-training data went through). The assets are vendored in tests/assets/llmjp4-tokenizer
(see conftest.py); no test here skips: a missing asset fails.
"""

from __future__ import annotations

import json
import random
import shutil

import pytest

from tune.models.tokenizer_sentencepiece import build_fast_tokenizer_from_assets

# Texts a training set contains, and the corners where a SentencePiece conversion usually
# breaks: spaces (leading, trailing, runs, only spaces), newlines and tabs, the dummy prefix,
# digits, full-width forms, characters outside the vocabulary (byte fallback), a literal "▁".
TEXTS = {
    "ja-prose": "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。",
    "ja-weather": "東京都渋谷区の天気は晴れ、最高気温は２５℃の予想です。",
    "ja-quotes": "「こんにちは」と彼女は言った。『本当に？』と彼は聞き返した。",
    "ja-fullwidth-punct": "（注）ＡＢＣ株式会社！？　＃１：【重要】〜お知らせ〜",
    "ja-katakana": "コンピューター・サイエンスとソフトウェア・エンジニアリング",
    "ja-hiragana": "きょうはいいてんきですね、さんぽにいきましょう",
    "ja-rare-kanji": "鬱蒼とした森で、薔薇と檸檬と蒟蒻を見つけた。",
    "ja-very-rare-kanji": "𠮷野家と髙島屋と﨑と𩸽",
    "ja-fullwidth-space": "　全角スペースで始まり、　途中にも　ある。",
    "ja-halfwidth-kana": "ｶﾞｷﾞｸﾞ ﾊﾟﾋﾟﾌﾟ",
    "ja-circled": "①②③ ㈱ ㍻ ℃ №",
    "en-pangram": "The quick brown fox jumps over the lazy dog.",
    "en-punct": "Don't stop—it's 3:45 p.m.! \"Quoted\" (parens) [brackets] {braces}",
    "en-url-mail": "Write to someone@example.com or see https://example.org/a?b=c&d=e#frag",
    "en-long-word": "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "code-python": "def f(x):\n    return x * 2\n\n\nprint(f(21))\n",
    "code-tabs": "\tif (a) {\n\t\treturn b;\n\t}\n",
    "code-deep-indent": "for i in range(10):\n        if i % 2:\n                print(i)  # odd\n",
    "code-json": '{"name": "tune", "version": [1, 2, 3], "ok": true, "nested": {"k": null}}',
    "code-sql": "SELECT id, name FROM users WHERE age >= 20 ORDER BY name;",
    "code-shell": "for f in *.jsonl; do wc -l \"$f\"; done 2>&1 | tee log.txt",
    "spaces-runs": "a  b   c    d     e",
    "spaces-leading": "  leading spaces",
    "spaces-trailing": "trailing spaces   ",
    "spaces-only-one": " ",
    "spaces-only-many": "      ",
    "newline-only": "\n",
    "newlines-many": "\n\n\nthree newlines first",
    "newline-then-space": "line one\n line two starts with a space",
    "crlf": "line1\r\nline2\r\n",
    "tabs-only": "\t\t",
    "digits": "1234567890 and 3.14159 and 1,000,000円 and 007",
    "digits-fullwidth": "２０２６年４月１日（水）午前９時３０分",
    "emoji": "😀👍🏽🎉 done",
    "emoji-zwj": "👩‍💻 coding and 👨‍👩‍👧‍👦 family",
    "emoji-heart-vs16": "I ❤️ Tokyo",
    "runes": "ᚠᛇᚻ᛫ᛒᛦᚦ",
    "math-alnum": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕋𝕖𝕩𝕥",
    "private-use": "\ue000\uf8ff",
    "control-chars": "a\u0000b\u0007c\u001bd",
    "line-separator": "one\u2028two\u2029three",
    "zero-width": "zero\u200bwidth\u200djoiner\ufeffbom",
    "combining": "e\u0301 vs é, a\u0308 vs ä",
    "korean": "안녕하세요, 세계!",
    "chinese": "我爱自然语言处理。",
    "arabic-hebrew": "مرحبا بالعالم שלום עולם",
    "devanagari-thai": "नमस्ते दुनिया สวัสดีชาวโลก",
    "mixed-ja-en": "LLM-jp-4は日本語とEnglishを混ぜて書ける。GPUメモリ80GBでbatch_size=8。",
    "mixed-code-ja": "# 日本語のコメント\nx = \"文字列\"  # 全角スペース　入り\n",
    "repeated-kana": "あ" * 200,
    "repeated-space-word": "ha " * 50,
    "empty": "",
    "literal-metaspace": "▁already▁escaped ▁",
    "literal-byte-piece": "<0x41><0xE3>",
    "sp-control-names": "<s>hi</s> <unk>",
    "angle-pipes-not-special": "<|notspecial|> a<b>c <| end |>",
    "backslashes": "C:\\path\\to\\file and \\n literally",
}

SP_USER_SYMBOLS = {
    "pad": "x<pad>y",
    "mask-start": "<mask> at the start",
    "cls-sep-eod": "<CLS> one <SEP> two <EOD>",
    "reserved": "a <RESERVED_000> b <RESERVED_003><RESERVED_343>",
    "nested": "<<pad>> <mask><mask>",
}


@pytest.mark.parametrize("text", list(TEXTS.values()), ids=list(TEXTS))
def test_encodes_id_for_id_like_sentencepiece(text, llmjp4_tokenizer, llmjp4_sp):
    reference = llmjp4_sp.encode(text)
    assert llmjp4_tokenizer(text, add_special_tokens=False).input_ids == reference
    # With special tokens: bos (id 1) first, no eos.
    assert llmjp4_tokenizer(text).input_ids == [1, *reference]


@pytest.mark.parametrize("text", list(TEXTS.values()), ids=list(TEXTS))
def test_decodes_like_sentencepiece(text, llmjp4_tokenizer, llmjp4_sp):
    ids = llmjp4_sp.encode(text)
    decoded = llmjp4_tokenizer.decode(ids)
    assert decoded == llmjp4_sp.decode(ids)
    if "▁" not in text:  # a literal "▁" is read as a space by SentencePiece itself
        assert decoded == text
    assert llmjp4_tokenizer.decode([1, *ids], skip_special_tokens=True) == decoded


def test_random_mixtures_encode_like_sentencepiece(llmjp4_tokenizer, llmjp4_sp):
    # Seeded mixtures of vocabulary pieces and awkward characters: where scores nearly tie and
    # where pieces, spaces and unknown characters meet.
    rng = random.Random(20260401)
    pieces = [llmjp4_sp.id_to_piece(i).replace("▁", " ") for i in rng.sample(range(608, 196_608), 5000)]
    awkward = list(" \n\t\r  0123456789.,:;!?()[]{}<>|/\\'\"-_=+*#@~`、。「」！？　▁") + [
        "😀", "👍🏽", "𠮷", "\u200b", "\u00a0", "é", "e\u0301", "ﬁ", "\x00", "\ufeff", "\ue000", "<0x41>", "<s>",
    ]  # fmt: skip
    texts = [
        "".join(rng.choice(pieces) if rng.random() < 0.5 else rng.choice(awkward) for _ in range(rng.randint(1, 24)))
        for _ in range(3000)
    ]
    encoded = llmjp4_tokenizer(texts, add_special_tokens=False).input_ids
    mismatches = [(t, ids, llmjp4_sp.encode(t)) for t, ids in zip(texts, encoded) if ids != llmjp4_sp.encode(t)]
    assert mismatches == []


def test_text_set_covers_byte_fallback_and_no_unknown_ids(llmjp4_tokenizer):
    byte_ids = range(352, 352 + 256)
    ids = [i for text in TEXTS.values() for i in llmjp4_tokenizer(text, add_special_tokens=False).input_ids]
    assert 0 not in ids  # never <|unk|>
    assert any(i in byte_ids for i in ids)
    assert llmjp4_tokenizer.convert_ids_to_tokens([352, 352 + 0x0A, 607]) == ["<0x00>", "<0x0A>", "<0xFF>"]
    # An emoji the vocabulary lacks comes out as its UTF-8 bytes.
    assert llmjp4_tokenizer("\U0001FAE8", add_special_tokens=False).input_ids[-4:] == [352 + b for b in "\U0001FAE8".encode()]


def test_special_tokens_sit_at_their_config_ids(llmjp4_tokenizer, llmjp4_dir):
    config = json.loads((llmjp4_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    decoder = {int(i): entry["content"] for i, entry in config["added_tokens_decoder"].items()}
    assert len(decoder) == 352
    assert len(llmjp4_tokenizer) == 196_608
    assert {llmjp4_tokenizer.convert_tokens_to_ids(name): i for i, name in decoder.items()} == {i: i for i in decoder}
    assert llmjp4_tokenizer.convert_ids_to_tokens(list(range(14))) == [decoder[i] for i in range(14)]
    roles = {
        "unk": llmjp4_tokenizer.unk_token_id,
        "bos": llmjp4_tokenizer.bos_token_id,
        "eos": llmjp4_tokenizer.eos_token_id,
        "mask": llmjp4_tokenizer.mask_token_id,
        "pad": llmjp4_tokenizer.pad_token_id,
        "cls": llmjp4_tokenizer.cls_token_id,
        "sep": llmjp4_tokenizer.sep_token_id,
    }
    assert roles == {"unk": 0, "bos": 1, "eos": 2, "mask": 3, "pad": 4, "cls": 5, "sep": 7}
    # All 352 are special: decoding with skip_special_tokens drops every one of them.
    assert llmjp4_tokenizer.decode(list(range(352)) + [108065], skip_special_tokens=True) == "hello"


def test_special_tokens_in_text_are_single_ids_never_split(llmjp4_tokenizer, llmjp4_sp):
    text = "<|start|>user<|message|>こんにちは<|end|><|start|>assistant<|channel|>final<|message|>はい<|return|>"
    ids = llmjp4_tokenizer(text, add_special_tokens=False).input_ids
    assert [i for i in ids if i < 352] == [10, 12, 11, 10, 9, 12, 2]
    # Text between special tokens is encoded as SentencePiece encodes it on its own.
    assert ids[1 : ids.index(12)] == llmjp4_sp.encode("user")
    assert ids[ids.index(12) + 1 : ids.index(11)] == llmjp4_sp.encode("こんにちは")
    assert llmjp4_tokenizer.decode(ids) == text  # the "▁" each text run got is dropped again
    assert llmjp4_tokenizer.decode(ids, skip_special_tokens=True) == "user こんにちは assistant final はい"
    assert llmjp4_tokenizer.convert_ids_to_tokens(llmjp4_tokenizer("<|reserved_343|>", add_special_tokens=False).input_ids) == ["<|reserved_343|>"]


def test_chat_template_is_the_official_file(llmjp4_tokenizer, official_template):
    assert llmjp4_tokenizer.chat_template == official_template
    rendered = llmjp4_tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True, conversation_start_date="2026-04-01"
    )
    assert rendered.endswith("<|start|>user<|message|>hi<|end|><|start|>assistant")
    ids = llmjp4_tokenizer(rendered, add_special_tokens=False).input_ids
    assert ids[0] == 10 and llmjp4_tokenizer.convert_ids_to_tokens(ids[-2:]) == ["<|start|>", "▁assistant"]
    assert llmjp4_tokenizer.decode(ids) == rendered


def test_sentencepiece_user_symbol_names_are_plain_text_by_default(llmjp4_tokenizer, llmjp4_sp):
    # SentencePiece matches its own names of ids 3-351 ("<pad>" -> 4, "<RESERVED_003>" -> 11)
    # inside text; LLM-jp-4's HF tokenizer names those ids <|...|> and reads "<pad>" as text.
    for text in SP_USER_SYMBOLS.values():
        assert any(3 <= i < 352 for i in llmjp4_sp.encode(text))
        ids = llmjp4_tokenizer(text, add_special_tokens=False).input_ids
        assert all(i >= 352 for i in ids), text
        assert llmjp4_tokenizer.decode(ids) == text


def test_sentencepiece_user_symbols_option_matches_sentencepiece_on_them_too(llmjp4_dir, llmjp4_sp):
    tokenizer = build_fast_tokenizer_from_assets(llmjp4_dir, sentencepiece_user_symbols=True)
    for text in [*SP_USER_SYMBOLS.values(), *TEXTS.values()]:
        assert tokenizer(text, add_special_tokens=False).input_ids == llmjp4_sp.encode(text), text
    assert tokenizer("<pad>", add_special_tokens=False).input_ids == [609, 4]  # "▁", <|endoftext|>


# Where a special-token name sits in message content (docs/literal-control-strings.md).
NAME_CONTEXTS = ("{0}", "see {0} here", "x{0}{0}y", "「{0}」の意味", "`{0}`\n")


def test_special_token_names_read_as_text_encode_like_sentencepiece(llmjp4_tokenizer, llmjp4_sp):
    # Names not matched (split_special_tokens: how tune encodes message content): each of the 352
    # <|...|> names is ordinary text, piece for piece as SentencePiece reads it (it does not know
    # these names). SentencePiece's own names of ids 3-351 (<pad>, <EOD>, <RESERVED_003>) are left
    # out on purpose: SentencePiece turns them into ids, tune reads them as text (test above).
    names = {i: token.content for i, token in llmjp4_tokenizer.added_tokens_decoder.items()}
    assert sorted(names) == list(range(352))
    texts = [context.format(name) for name in names.values() for context in NAME_CONTEXTS]
    encoded = llmjp4_tokenizer(texts, add_special_tokens=False, split_special_tokens=True).input_ids
    assert [(text, ids) for text, ids in zip(texts, encoded) if ids != llmjp4_sp.encode(text)] == []
    assert all(i >= 352 for ids in encoded for i in ids)
    # Matched (the default, what the chat template's own control tokens need): each name is its id.
    assert [llmjp4_tokenizer(name, add_special_tokens=False).input_ids for name in names.values()] == [[i] for i in names]


def test_saved_tokenizer_reads_names_as_text_only_when_asked(tmp_path, llmjp4_tokenizer, llmjp4_sp):
    # What consumers load (save_pretrained, then plain transformers): names read as text still
    # encode as SentencePiece does; by default a name in the text is its control id.
    from transformers import AutoTokenizer

    llmjp4_tokenizer.save_pretrained(tmp_path)
    saved = AutoTokenizer.from_pretrained(tmp_path)
    text = "Harmony closes a message with <|end|>, a reply with <|return|> and a call with <|call|>."
    assert saved(text, add_special_tokens=False, split_special_tokens=True).input_ids == llmjp4_sp.encode(text)
    assert [i for i in saved(text, add_special_tokens=False).input_ids if i < 352] == [11, 2, 13]


def test_folder_with_tokenizer_json_is_loaded_directly(tmp_path, llmjp4_tokenizer, llmjp4_dir, llmjp4_sp):
    # A published-style tokenizer.json whose post-processor adds nothing: bos still comes from
    # the config's add_bos_token, and the chat template from the config when no .jinja exists.
    from tokenizers import processors

    backend = llmjp4_tokenizer.backend_tokenizer.__class__.from_str(llmjp4_tokenizer.backend_tokenizer.to_str())
    backend.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B", special_tokens=[])
    backend.save(str(tmp_path / "tokenizer.json"))
    config = json.loads((llmjp4_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["chat_template"] = "{{ messages[0].content }}"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")

    tokenizer = build_fast_tokenizer_from_assets(tmp_path)
    for text in TEXTS.values():
        assert tokenizer(text).input_ids == [1, *llmjp4_sp.encode(text)]
    assert tokenizer.pad_token_id == 4 and tokenizer.eos_token_id == 2
    assert tokenizer.apply_chat_template([{"role": "user", "content": "only this"}], tokenize=False) == "only this"


def test_missing_or_garbled_folders_are_refused_with_the_path(tmp_path, llmjp4_dir, llmjp4_model_file):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere.*tokenizer.json or a SentencePiece"):
        build_fast_tokenizer_from_assets(missing)

    folder = tmp_path / "assets"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match=r"tokenizer_config\.json: missing"):
        build_fast_tokenizer_from_assets(folder)

    shutil.copy(llmjp4_dir / "tokenizer_config.json", folder)
    with pytest.raises(FileNotFoundError, match=r"no tokenizer\.json and no SentencePiece \*\.model"):
        build_fast_tokenizer_from_assets(folder)

    (folder / "broken.model").write_bytes(b"\x0a\xff\xff\xff not a protobuf")
    with pytest.raises(ValueError, match=r"broken\.model: not a SentencePiece model"):
        build_fast_tokenizer_from_assets(folder)
    (folder / "broken.model").unlink()

    (folder / "tokenizer_config.json").write_text("{not json", encoding="utf-8")
    shutil.copy(llmjp4_model_file, folder)
    with pytest.raises(ValueError, match=r"tokenizer_config\.json: not valid JSON"):
        build_fast_tokenizer_from_assets(folder)

    (folder / "tokenizer.json").write_text("[1, 2]", encoding="utf-8")
    shutil.copy(llmjp4_dir / "tokenizer_config.json", folder)
    with pytest.raises(ValueError, match=r"tokenizer\.json: not a tokenizers JSON file"):
        build_fast_tokenizer_from_assets(folder)


def test_sentencepiece_features_it_cannot_reproduce_are_refused(tmp_path, llmjp4_dir, llmjp4_model_file):
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(llmjp4_model_file.read_bytes())
    proto.normalizer_spec.remove_extra_whitespaces = True
    (tmp_path / "changed.model").write_bytes(proto.SerializeToString())
    shutil.copy(llmjp4_dir / "tokenizer_config.json", tmp_path)
    with pytest.raises(ValueError, match="cannot convert this SentencePiece model exactly: remove_extra_whitespaces"):
        build_fast_tokenizer_from_assets(tmp_path)


# The vendored assets, byte for byte as published (llm-jp/llm-jp-tokenizer 925b87aa2b55): a changed
# file would make every fidelity test above compare against something that is not LLM-jp-4's.
VENDORED_SHA256 = {
    "LICENSE": "8198fdaea7582b717b715a1eb6e38f726f526815681cc1af8f9dd3a7f172d0fd",
    "chat_template.jinja": "5d5e57261aef30a188c6fe8ac74e02de777f7e16a846485780d758f21f3e4093",
    "llm-jp-tokenizer_ver4.0_alpha1.0.model": "954fa47c753decffdba93f6cddf5eeda7964a99e2c4496c2cda0c95a84aa33ec",
    "special_tokens_map.json": "1b031761a2ba4d98b731b79d9c432bc37fe3f7704857147bc2b4388bc8c5ad20",
    "tokenizer_config.json": "55aa3a433cbbde451a88b449dd46e5cacda76ed79a09347f105f6b08f438e5b2",
}


def test_vendored_assets_are_unchanged_and_carry_their_licence_and_notice():
    import hashlib

    from tests.models.conftest import VENDORED_ASSET_DIR

    files = {path.name for path in VENDORED_ASSET_DIR.iterdir()}
    assert files == {*VENDORED_SHA256, "NOTICE.md"}, f"{VENDORED_ASSET_DIR}: unexpected files {sorted(files)}"
    for name, digest in VENDORED_SHA256.items():
        assert hashlib.sha256((VENDORED_ASSET_DIR / name).read_bytes()).hexdigest() == digest, f"{name} was modified"
    assert "Apache License" in (VENDORED_ASSET_DIR / "LICENSE").read_text(encoding="utf-8")
    notice = (VENDORED_ASSET_DIR / "NOTICE.md").read_text(encoding="utf-8")
    assert "llm-jp/llm-jp-tokenizer" in notice and "Apache-2.0" in notice and "vendored" in notice.lower()
