"""Data intake never loses a file to one row, and a far-too-long row never reaches the tokenizer.

Undecodable bytes, an integer Python cannot read, pathological nesting and lone surrogates are each
a bad row with its file and line (.jsonl), row (.json) or row and column (.parquet), counted and
reported, or the stop under `on_bad_row: error`; the rest of the file is read. A UTF-8 byte order
mark is accepted. Where over-long samples are dropped, a row whose rendering is longer than any
tokenization of max_seq_len tokens can be is dropped before tokenizing (tune.data.length_bound),
counted like the other over-long samples, and the prepared data is the same as without that shortcut.
"""

import codecs
import json
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tune.config.schema import DataSection
from tune.data import chat_masks, sample_builder
from tune.data.conversation_samples import CONVERSATION_SAMPLES
from tune.data.conversion import convert_source
from tune.data.converters import get_converter
from tune.data.json_text import MAX_NESTING
from tune.data.length_bound import chars_per_token_bound, max_chars_per_token
from tune.data.pipeline import prepare_data
from tune.data.records import BAD_ROW_REASONS, BadRow, Conversation, Preference
from tune.data.report import DatasetStats
from tune.data.rows import UnreadableFile, read_rows
from tune.data.sources import Source
from tune.errors import UserError
from tune.recipe import load_recipe

GOOD = {"messages": [{"role": "user", "content": "こんにちは"}, {"role": "assistant", "content": "こんにちは！"}]}
GOOD_LINE = json.dumps(GOOD, ensure_ascii=False).encode()


def nested(depth: int) -> bytes:
    """A row whose `messages` list nests ``depth`` - 1 more levels (the row itself is level 1)."""
    return b'{"messages": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


# One of each: what used to lose the whole file, crash, or hang in the tokenizer.
UNDECODABLE = b'{"messages": [{"role": "user", "content": "caf\xe9"}, {"role": "assistant", "content": "ok"}]}'
HUGE_INTEGER = b'{"messages": [], "id": ' + b"7" * 5000 + b"}"
DEEP = b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
SURROGATE = b'{"messages": [{"role": "user", "content": "a\\ud800b"}, {"role": "assistant", "content": "ok"}]}'
BAD = [UNDECODABLE, HUGE_INTEGER, DEEP, SURROGATE]
REASONS = ["not_utf8", "number_too_long", "too_deep", "lone_surrogate"]


def rows_of(path):
    return [(index, row.reason if isinstance(row, BadRow) else row) for index, row in read_rows(path)]


def test_the_new_reasons_are_known_bad_row_reasons():
    assert set(REASONS) <= set(BAD_ROW_REASONS)


def test_jsonl_each_bad_line_is_a_bad_row_at_its_line_and_the_rest_is_read(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"\n".join([codecs.BOM_UTF8 + GOOD_LINE, *BAD, GOOD_LINE]) + b"\n")
    assert rows_of(path) == [(0, GOOD), *zip(range(1, 5), REASONS), (5, GOOD)]


def test_jsonl_bad_row_details_name_the_line_and_what_is_wrong(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"\n".join(BAD) + b"\n")
    details = [row.detail for _, row in read_rows(path)]
    assert details[0].startswith("line 1 is not UTF-8 text (byte 0xe9 at byte 47 of the line)")
    assert details[1].startswith("line 2 holds an integer of 5000 digits; Python reads integers of at most 4300 digits")
    assert details[2] == f"line 3 nests lists and objects more than {MAX_NESTING} levels deep"
    assert details[3].startswith("line 4: `messages[0].content` holds a lone UTF-16 surrogate (\\ud800) after 'a'")


def test_nesting_is_refused_just_past_the_bound_and_read_at_it(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(nested(MAX_NESTING) + b"\n" + nested(MAX_NESTING + 1) + b"\n")
    (_, at_bound), (_, past) = read_rows(path)
    assert isinstance(at_bound, dict) and past.reason == "too_deep"


def test_a_surrogate_pair_escape_is_text(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "\\ud83d\\ude00 and \\u00e9"}\n', encoding="utf-8")
    assert rows_of(path) == [(0, {"text": "😀 and é"})]


def test_json_list_each_bad_element_is_a_bad_row_at_its_index_and_the_bom_is_accepted(tmp_path):
    path = tmp_path / "rows.json"
    path.write_bytes(codecs.BOM_UTF8 + b"[" + b",\n".join([GOOD_LINE, *BAD, GOOD_LINE]) + b"]\n")
    assert rows_of(path) == [(0, GOOD), *zip(range(1, 5), REASONS), (5, GOOD)]
    details = [row.detail for _, row in read_rows(path) if isinstance(row, BadRow)]
    assert details[0].startswith("row 1 is not UTF-8 text (byte 0xe9 at line 2 of the file)")
    assert details[3].startswith("row 4: `messages[0].content` holds a lone UTF-16 surrogate")


def test_json_whose_list_structure_is_broken_is_still_refused_with_its_line(tmp_path):
    path = tmp_path / "rows.json"
    path.write_bytes(b"[" + GOOD_LINE + b",\n" + GOOD_LINE + b"\n" + GOOD_LINE + b"]")
    with pytest.raises(UnreadableFile, match=r"rows\.json: not valid JSON \(expected ',' or '\]' after row 1 at line 3\)"):
        read_rows(path)
    path.write_bytes(b'{"messages": []}')
    with pytest.raises(UnreadableFile, match="must hold a list of objects, found an object"):
        read_rows(path)


def test_parquet_a_string_that_is_not_utf8_is_a_bad_row_naming_row_and_column(tmp_path):
    # pyarrow does not check UTF-8 when a binary column is viewed as strings: other writers do the same
    text = pa.array([b"fine", b"caf\xe9", b"also fine"], type=pa.binary()).view(pa.string())
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"text": text, "n": [1, 2, 3]}), path)
    rows = list(read_rows(path))
    assert [row for _, row in rows[::2]] == [{"text": "fine", "n": 1}, {"text": "also fine", "n": 3}]
    assert rows[1][1].reason == "not_utf8"
    assert rows[1][1].detail.startswith("row 1 column `text` is not UTF-8 text (byte 0xe9")


def test_parquet_json_columns_are_read_with_the_same_checks(tmp_path):
    cells = ['[{"role": "user", "content": "ok"}]', '[{"role": "user", "content": "\\udc00"}]',
             '[' + "1" * 5000 + ']', "[" * 5000 + "]" * 5000]
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"messages": pa.array(cells, type=pa.json_(pa.string()))}), path)
    assert rows_of(path) == [(0, {"messages": [{"role": "user", "content": "ok"}]}), (1, "lone_surrogate"),
                             (2, "number_too_long"), (3, "too_deep")]
    assert list(read_rows(path))[1][1].detail.startswith("row 1 column `messages`: `[0].content` holds a lone")


@pytest.mark.parametrize("arguments, reason", [
    ('{"n": ' + "9" * 5000 + "}", "number_too_long"),
    ('{"s": "\\udfff"}', "lone_surrogate"),
    ('{"a": ' + "[" * 2000 + "]" * 2000 + "}", "too_deep"),
])
def test_json_strings_inside_a_row_are_read_with_the_same_checks(arguments, reason):
    """Tool-call arguments and message lists some copies store as JSON strings: a bad row, not a traceback."""
    row = {"messages": [{"role": "user", "content": "q"},
                        {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": arguments}]}]}
    with pytest.raises(BadRow) as info:
        get_converter("messages")(row)
    assert info.value.reason == reason and "messages[1].tool_calls[0].arguments" in info.value.detail
    with pytest.raises(BadRow) as info:
        get_converter("messages")({"messages": json.dumps(row["messages"])[:-1] + ', ' + arguments + "]"})
    assert info.value.reason == reason and "`messages`" in info.value.detail


def test_a_lone_surrogate_from_a_source_without_checks_is_a_bad_row_at_conversion(tmp_path):
    """Rows from the Hub's `datasets` are not read by tune.data.rows; conversion still refuses the row."""
    bad = {"messages": [{"role": "user", "content": "x\ud800"}, {"role": "assistant", "content": "ok"}]}
    source = Source("hub", "messages", {"messages": "messages"}, "f", None,
                    lambda: iter([("hub row 0", GOOD), ("hub row 1", bad), ("hub row 2", GOOD)]))
    stats = DatasetStats("hub")
    converted = convert_source(source, get_converter("messages"), stats, "skip", tmp_path / "records.arrow")
    assert converted.count == 2 and dict(stats.bad_rows) == {"lone_surrogate": 1}
    assert stats.bad_examples["lone_surrogate"][0].startswith("hub row 1: the record holds a lone UTF-16 surrogate (\\ud800) after")


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    """``recipe(lines, overrides=(), suffix=".jsonl", extra="")``: a tiny recipe on a data file of ``lines`` (bytes)."""
    monkeypatch.setenv("TUNE_CACHE", str(tmp_path / "cache"))

    def make(lines, overrides=(), suffix=".jsonl", extra=""):
        data = tmp_path / f"rows{suffix}"
        data.write_bytes(b"\n".join(lines) + b"\n")
        path = tmp_path / "r.yaml"
        path.write_text(f"model: {{name: tiny-llm-jp-4-8b}}\n{extra}"
                        f"data: {{datasets: [{{path: {data.name}{', format: preference' if 'dpo' in extra else ''}}}], "
                        "max_seq_len: 256, eval_fraction: 0}\n")
        return load_recipe(path, list(overrides)).recipe

    return make


def test_preparation_counts_each_intake_problem_with_file_and_line(recipe, tiny_tokenizer, tmp_path):
    prepared = prepare_data(recipe([codecs.BOM_UTF8 + GOOD_LINE, *BAD]), tiny_tokenizer)
    stats = prepared.report.datasets[0]
    assert stats.rows_read == 5 and stats.samples == 1  # the first row, behind its byte order mark, trains
    assert dict(stats.bad_rows) == dict.fromkeys(REASONS, 1)
    for line, reason in enumerate(REASONS, start=2):
        assert stats.bad_examples[reason][0].startswith(f"{tmp_path / 'rows.jsonl'}:line {line}: ")
    text = "\n".join(prepared.report.lines())
    assert "bad rows (not_utf8): 1, e.g." in text and "bad rows (too_deep): 1, e.g." in text


def test_on_bad_row_error_stops_at_the_undecodable_line_naming_it(recipe, tiny_tokenizer):
    with pytest.raises(UserError, match=r"rows\.jsonl:line 2: bad row \(not_utf8\): line 2 is not UTF-8 text"):
        prepare_data(recipe([GOOD_LINE, *BAD], ["data.on_bad_row=error"]), tiny_tokenizer)


@pytest.fixture
def encoded(monkeypatch):
    """The length of every text the tokenizer is handed, as training encodes (tune.data.chat_masks)."""
    lengths = []
    real = chat_masks.encode_rendered

    def spy(tokenizer, rendered):
        lengths.extend(len(chat.text) for chat in rendered)
        return real(tokenizer, rendered)

    monkeypatch.setattr(chat_masks, "encode_rendered", spy)
    return lengths


def huge_text(size: int) -> str:
    return ("日本語の文章と English words, 123. " * (size // 25 + 1))[:size]


def test_a_10_mb_row_is_dropped_as_overlong_without_reaching_the_tokenizer(recipe, tiny_tokenizer, encoded):
    """Before: ~17 s and ~1.7 GB in the tokenizer, then dropped. Now: dropped before it, in the same count."""
    big = {"messages": [{"role": "user", "content": huge_text(10_000_000)}, {"role": "assistant", "content": "ok"}]}
    lines = [GOOD_LINE, json.dumps(big, ensure_ascii=False).encode()]
    start = time.perf_counter()
    prepared = prepare_data(recipe(lines), tiny_tokenizer)
    elapsed = time.perf_counter() - start
    stats = prepared.report.datasets[0]
    assert stats.samples == 1 and stats.dropped_overlong == 1
    assert "dropped: longer than data.max_seq_len: 1" in "\n".join(prepared.report.lines())
    assert encoded and max(encoded) < 1000
    assert elapsed < 10  # loose (a shared CPU): reading and rendering 10 MB take about a second


def test_a_preference_pair_with_a_huge_answer_is_dropped_untokenized(recipe, tiny_tokenizer, encoded):
    pairs = [{"prompt": "質問", "chosen": "良い答え", "rejected": "悪い答え"},
             {"prompt": "質問", "chosen": huge_text(1_000_000), "rejected": "短い"}]
    prepared = prepare_data(recipe([json.dumps(p, ensure_ascii=False).encode() for p in pairs],
                                   extra="method: {name: dpo}\n"), tiny_tokenizer)
    stats = prepared.report.datasets[0]
    assert stats.samples == 1 and stats.dropped_overlong == 1
    assert max(encoded) < 1000


def test_the_early_drop_changes_no_prepared_sample(recipe, tiny_tokenizer, encoded, monkeypatch):
    """Rows that fit, rows over the limit but within the bound (tokenized, then dropped), rows past the
    bound (dropped untokenized): the prepared sets and counts equal those of tokenizing everything."""
    limit_chars = 256 * max_chars_per_token(tiny_tokenizer)
    sizes = [10, 20, 1_500, limit_chars - 1_000, limit_chars + 1, 3 * limit_chars]  # the template adds ~350
    rows = [{"messages": [{"role": "user", "content": huge_text(size)}, {"role": "assistant", "content": f"答え{size}"}]}
            for size in sizes]
    lines = [json.dumps(row, ensure_ascii=False).encode() for row in rows]

    def prepared_rows():
        prepared = prepare_data(recipe(lines, ["data.cache=false"]), tiny_tokenizer)
        stats = prepared.report.datasets[0]
        return [dict(row) for row in prepared.train], (stats.samples, stats.dropped_overlong, stats.tokens)

    early = prepared_rows()
    untokenized = len(sizes) - len(encoded)
    encoded.clear()
    monkeypatch.setattr(sample_builder, "chars_that_fit", lambda tokenizer, tokens: None)
    assert prepared_rows() == early and len(encoded) == len(sizes)
    assert untokenized == 2 and early[1][:2] == (2, 4)


def test_a_rendering_exactly_at_the_bound_is_tokenized_one_character_more_is_not(tiny_tokenizer, encoded):
    data = DataSection(datasets=[{"path": "/x.jsonl"}], max_seq_len=64)
    most = 64 * max_chars_per_token(tiny_tokenizer)

    def record(size):
        return Conversation(({"role": "user", "content": "a" * size}, {"role": "assistant", "content": "b"}))

    frame = len(CONVERSATION_SAMPLES.render(tiny_tokenizer, record(1), data).text) - 1
    at, past = record(most - frame), record(most - frame + 1)
    samples = CONVERSATION_SAMPLES.build(tiny_tokenizer, [at, past], data, "x")
    assert encoded == [most] and samples[0] is not None and samples[1] is None


def test_truncation_and_concat_windows_still_tokenize_every_row(tiny_tokenizer, encoded):
    """Where over-long samples are cut (or windows split them), their tokens are needed: no early drop."""
    big = Conversation(({"role": "user", "content": "a" * 20_000}, {"role": "assistant", "content": "b"}))
    for options in ({"overlong": "truncate"}, {"packing": "concat"}):
        data = DataSection(datasets=[{"path": "/x.jsonl"}], max_seq_len=64, **options)
        assert CONVERSATION_SAMPLES.build(tiny_tokenizer, [big], data, "x")[0] is not None
    assert len(encoded) == 2


def test_the_bound_holds_on_the_texts_that_fill_tokens_most(tiny_tokenizer):
    """len(text) / B never exceeds the token count: the vocabulary's longest pieces back to back, special
    token names read as text, spaces, characters only bytes can encode."""
    bound = max_chars_per_token(tiny_tokenizer)
    backend = tiny_tokenizer.backend_tokenizer
    vocab = json.loads(backend.to_str())["model"]["vocab"]
    longest = sorted((piece for piece, _ in vocab), key=len, reverse=True)[:20]
    texts = ["".join(longest).replace("▁", " ") * 30, " " * 5000, "<|start|>assistant<|message|>" * 200,
             "😀𠮷" * 500, "".join(p.replace("▁", " ") for p in longest[:3]) + "x"]
    for text in texts:
        for names_as_text in (False, True):
            backend.encode_special_tokens = names_as_text
            try:
                tokens = len(backend.encode(text, add_special_tokens=False).ids)
            finally:
                backend.encode_special_tokens = False
            assert len(text) <= tokens * bound, (text[:40], tokens)


@pytest.mark.slow  # building the 196k-piece tokenizer takes seconds
def test_llm_jp_4s_tokenizer_gives_its_longest_piece_as_the_bound(repo_root):
    from tune.models.tokenizer_sentencepiece import build_fast_tokenizer_from_assets

    tokenizer = build_fast_tokenizer_from_assets(repo_root / "tests/assets/llmjp4-tokenizer")
    assert max_chars_per_token(tokenizer) == 16  # '＝' x 16 and the like; special token names are 16 at most
    longest = "＝" * 16
    assert len(tokenizer.backend_tokenizer.encode(longest * 100, add_special_tokens=False).ids) >= 100


UNIGRAM = {"type": "Unigram", "unk_id": 0, "byte_fallback": True,
           "vocab": [["<unk>", 0.0], *[[f"<0x{b:02X}>", 0.0] for b in range(256)], ["abcdefghij", -1.0]]}
SAFE = {"normalizer": {"type": "Sequence", "normalizers": [{"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
                                                          {"type": "Prepend", "prepend": "▁"}]},
        "pre_tokenizer": None, "model": UNIGRAM, "truncation": None,
        "added_tokens": [{"content": "<|a-very-long-special|>", "lstrip": False, "rstrip": False, "normalized": False}]}


def test_the_bound_is_the_longest_piece_or_added_token_scaled_by_what_the_normalizer_can_fold():
    assert chars_per_token_bound(SAFE) == len("<|a-very-long-special|>")
    assert chars_per_token_bound({**SAFE, "added_tokens": []}) == 10
    folding = {"type": "Replace", "pattern": {"String": "  "}, "content": " "}  # two spaces become one
    assert chars_per_token_bound({**SAFE, "added_tokens": [], "normalizer": folding}) == 20


@pytest.mark.parametrize("change", [
    {"normalizer": {"type": "Strip", "strip_left": True, "strip_right": True}},
    {"normalizer": {"type": "NFKC"}},
    {"normalizer": {"type": "Precompiled", "precompiled_charsmap": "AA=="}},
    {"normalizer": {"type": "Replace", "pattern": {"Regex": " +"}, "content": " "}},
    {"normalizer": {"type": "Replace", "pattern": {"String": "\u200b"}, "content": ""}},
    {"pre_tokenizer": {"type": "Whitespace"}},
    {"pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "Removed", "invert": False}},
    {"model": {**UNIGRAM, "byte_fallback": False}},
    {"model": {**UNIGRAM, "vocab": UNIGRAM["vocab"][:100]}},
    {"model": {"type": "BPE", "vocab": {"a": 0, "<unk>": 1}, "merges": [], "unk_token": "<unk>", "fuse_unk": True,
               "byte_fallback": False}},
    {"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}},
    {"added_tokens": [{"content": "<x>", "lstrip": False, "rstrip": True, "normalized": False}]},
    {"truncation": {"max_length": 512}},
], ids=["strip", "nfkc", "charsmap", "regex-replace", "deleting-replace", "whitespace", "split-removed",
        "unigram-unk", "no-byte-pieces", "bpe-fused-unk", "wordpiece", "rstrip", "truncation"])
def test_no_bound_where_one_token_can_stand_for_any_run_of_text(change):
    assert chars_per_token_bound({**SAFE, **change}) is None


def test_unknown_characters_fuse_into_one_token_without_byte_fallback():
    """Why such a tokenizer gets no bound: one token for a run of any length."""
    from tokenizers import Tokenizer, models

    tokenizer = Tokenizer(models.Unigram([("<unk>", 0.0), ("a", -1.0)], 0, byte_fallback=False))
    assert len(tokenizer.encode("z" * 1000).ids) == 1
