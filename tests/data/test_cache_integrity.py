"""A damaged prepared-data cache entry is detected, removed, reported and rebuilt; a cached report's
padding figure is the one of the recipe at hand (the batch size is not in the key)."""

import json

import pytest

from tune.data import cache
from tune.data.pipeline import prepare_data
from tune.recipe import load_recipe

ROWS = [
    {"messages": [{"role": "user", "content": "質問 " * (1 + i % 7) + str(i)},
                  {"role": "assistant", "content": "答え " * (1 + (i * 5) % 11) + str(i)}]}
    for i in range(24)
]


@pytest.fixture
def prepared(tmp_path, monkeypatch, tiny_tokenizer):
    """``prepared(*overrides)`` -> (PreparedData, lines told to the user)."""
    monkeypatch.setenv("TUNE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: {name: tiny-llm-jp-4-8b}\ndata:\n  datasets:\n    - {path: rows.jsonl}\n"
                      "  eval_fraction: 0.2\n"
                      f"output: {{dir: {tmp_path / 'run'}}}\n")

    def run(*overrides):
        told = []
        data = prepare_data(load_recipe(recipe, list(overrides)).recipe, tiny_tokenizer, printer=told.append)
        return data, told

    return run


def entry(key):
    return cache.cache_dir(key)


def flip_byte_in_middle(path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def test_an_entry_stores_checksums_of_every_file_and_a_clean_one_is_used_silently(prepared):
    first, told = prepared()
    recorded = json.loads((entry(first.key) / cache.CHECKSUM_FILE).read_text())
    assert set(recorded["files"]) == {cache.TRAIN_FILE, cache.EVAL_FILE, cache.REPORT_FILE, cache.LENGTHS_FILE}
    again, told = prepared()
    assert again.from_cache and told == []


@pytest.mark.parametrize("damage", ["flip a token id", "truncate", "delete", "edit the report"])
def test_a_damaged_entry_is_detected_removed_and_rebuilt_and_the_user_told(prepared, damage):
    first, _ = prepared()
    ids = list(first.train["input_ids"])
    folder = entry(first.key)
    if damage == "flip a token id":
        flip_byte_in_middle(folder / cache.TRAIN_FILE)
    elif damage == "truncate":
        (folder / cache.EVAL_FILE).write_bytes((folder / cache.EVAL_FILE).read_bytes()[:-9])
    elif damage == "delete":
        (folder / cache.TRAIN_FILE).unlink()
    else:
        report = json.loads((folder / cache.REPORT_FILE).read_text())
        report["eval_samples"] += 1
        (folder / cache.REPORT_FILE).write_text(json.dumps(report))
    rebuilt, told = prepared()
    assert not rebuilt.from_cache and rebuilt.key == first.key
    assert list(rebuilt.train["input_ids"]) == ids
    assert len(told) == 1 and first.key in told[0] and "damaged" in told[0] and "preparing the data again" in told[0]
    # the rebuilt entry is whole again and used from now on
    assert cache.verify_entry(folder) is None
    third, told = prepared()
    assert third.from_cache and told == []


def test_a_flipped_token_id_in_the_middle_is_caught_even_though_arrow_still_reads_the_file(prepared):
    from datasets import Dataset

    first, _ = prepared()
    path = entry(first.key) / cache.TRAIN_FILE
    flip_byte_in_middle(path)
    assert len(Dataset.from_file(str(path))) == len(first.train)  # Arrow itself sees nothing wrong
    assert "train.arrow differs from what was stored" in cache.verify_entry(path.parent)


def test_a_missing_checksum_file_is_damage(prepared):
    first, _ = prepared()
    (entry(first.key) / cache.CHECKSUM_FILE).unlink()
    rebuilt, told = prepared()
    assert not rebuilt.from_cache and "no checksums.json" in told[0]


@pytest.mark.parametrize("packing", ["none", "isolated"])
def test_a_cache_hit_reports_the_padding_of_the_batch_size_at_hand(prepared, packing):
    built = {}
    for batch in (4, 1, 3):
        fresh, _ = prepared(f"train.per_device_batch_size={batch}", f"data.packing={packing}", "data.cache=false")
        built[batch] = fresh.report
    first, _ = prepared("train.per_device_batch_size=4", f"data.packing={packing}")
    assert first.report.padding_fraction == built[4].padding_fraction > 0
    for batch in (1, 3):
        hit, _ = prepared(f"train.per_device_batch_size={batch}", f"data.packing={packing}")
        assert hit.from_cache and hit.key == first.key  # a batch change does not prepare the data again
        assert hit.report.padding_fraction == built[batch].padding_fraction
        assert hit.report.packed_fill == built[batch].packed_fill
        assert hit.report.packed_padding_fraction == built[batch].packed_padding_fraction
    assert built[1].padding_fraction == 0.0


def test_concat_windows_stay_unpadded_from_the_cache(prepared):
    first, _ = prepared("data.packing=concat", "data.max_seq_len=64")
    assert not (entry(first.key) / cache.LENGTHS_FILE).exists()
    hit, _ = prepared("data.packing=concat", "data.max_seq_len=64", "train.per_device_batch_size=3")
    assert hit.from_cache and hit.report.padding_fraction == 0.0


def test_a_dpo_cache_hit_reports_the_padding_of_the_batch_size_at_hand(tmp_path, monkeypatch, tiny_tokenizer):
    monkeypatch.setenv("TUNE_CACHE", str(tmp_path / "cache"))
    recipe = tmp_path / "dpo.yaml"
    recipe.write_text("model: {name: tiny-llm-jp-4-8b}\nmethod: {name: dpo}\n"
                      "data:\n  datasets:\n    - {card: ac-self-inst, use: samples}\n"
                      f"output: {{dir: {tmp_path / 'run'}}}\n")

    def prepared(*overrides):
        return prepare_data(load_recipe(recipe, list(overrides)).recipe, tiny_tokenizer)

    fresh = {batch: prepared(f"train.per_device_batch_size={batch}", "data.cache=false").report.padding_fraction
             for batch in (1, 2)}
    assert fresh[2] != fresh[1]
    first = prepared("train.per_device_batch_size=2")
    hit = prepared("train.per_device_batch_size=1")
    assert hit.from_cache and hit.key == first.key and hit.report.padding_fraction == fresh[1]
