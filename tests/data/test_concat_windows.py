"""`data.packing: concat`: LLM-jp's own windows (ft-llm-2026 chunk_stream), checked by hand and on a prepared mixture."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tune.data.arrow_files import BatchWriter
from tune.data.concat_windows import write_windows
from tune.data.conversation_samples import CONVERSATION_SAMPLES
from tune.data.pipeline import prepare_data
from tune.recipe import load_recipe

M = -100  # no loss


def write_samples(path, samples):
    writer = BatchWriter(path, CONVERSATION_SAMPLES.schema, stream=True, batch_rows=2)
    for ids, labels, dataset in samples:
        writer.append((ids, labels, dataset))
    writer.close()


def read(path):
    with pa.OSFile(str(path), "rb") as source:
        return pa.ipc.open_stream(source).read_all().to_pylist()


def chunk_stream(examples, max_seq_length):
    """ft-llm-2026's tuning/sft_dataset.py SFTModelDataset._process_examples, as written there (the reference)."""
    def stream():
        input_buffer, mask_buffer = [], []
        max_len = max_seq_length + 1
        for example in examples:
            for id_, mask in zip(example["input_ids"], example["loss_mask"]):
                input_buffer.append(id_)
                mask_buffer.append(mask)
                if len(input_buffer) >= max_len:
                    yield input_buffer[:max_len], mask_buffer[:max_len]
                    input_buffer, mask_buffer = input_buffer[max_len:], mask_buffer[max_len:]
        while len(input_buffer) >= max_len:
            yield input_buffer[:max_len], mask_buffer[:max_len]
            input_buffer, mask_buffer = input_buffer[max_len:], mask_buffer[max_len:]
    return [(ids, mask) for ids, mask in stream() if set(mask) != {0}]


def test_the_worked_example_by_hand(tmp_path):
    """max_seq_len 4: windows of 5 tokens; A = 11 12 13 (12, 13 supervised), B = 21 22 23 24 (23, 24)."""
    write_samples(tmp_path / "s.arrow", [([11, 12, 13], [M, 12, 13], 0), ([21, 22, 23, 24], [M, M, 23, 24], 1)])
    stats = write_windows(tmp_path / "s.arrow", tmp_path / "w.arrow", max_seq_len=4)
    assert read(tmp_path / "w.arrow") == [{"input_ids": [11, 12, 13, 21, 22], "labels": [M, 12, 13, M, M], "dataset": 0}]
    assert (stats.kept, stats.unsupervised, stats.tail_tokens) == (1, 0, 2)


def test_windows_equal_ft_llm_2026s_chunk_stream_on_random_samples(tmp_path):
    rng = np.random.default_rng(0)
    samples = []
    for index in range(60):
        length = int(rng.integers(1, 40))
        ids = rng.integers(352, 4000, length).tolist()
        mask = (rng.random(length) < 0.4).astype(int).tolist()
        if index % 7 == 0:
            mask = [0] * length  # a sample with no loss still feeds the stream
        samples.append((ids, [i if m else M for i, m in zip(ids, mask)], index % 3))
    write_samples(tmp_path / "s.arrow", samples)
    stats = write_windows(tmp_path / "s.arrow", tmp_path / "w.arrow", max_seq_len=16)
    reference = chunk_stream([{"input_ids": ids, "loss_mask": [int(label != M) for label in labels]}
                              for ids, labels, _ in samples], 16)
    windows = read(tmp_path / "w.arrow")
    assert [(w["input_ids"], [int(label != M) for label in w["labels"]]) for w in windows] == reference
    assert all(len(w["input_ids"]) == 17 for w in windows)
    total = sum(len(ids) for ids, _, _ in samples)
    assert stats.kept * 17 + stats.unsupervised * 17 + stats.tail_tokens == total


def test_a_window_without_loss_is_dropped_and_counted(tmp_path):
    write_samples(tmp_path / "s.arrow", [([1, 2, 3, 4, 5], [M] * 5, 0), ([6, 7, 8, 9, 10], [M, 7, 8, 9, 10], 0)])
    stats = write_windows(tmp_path / "s.arrow", tmp_path / "w.arrow", max_seq_len=4)
    assert [w["input_ids"] for w in read(tmp_path / "w.arrow")] == [[6, 7, 8, 9, 10]]
    assert (stats.kept, stats.unsupervised, stats.tail_tokens) == (1, 1, 0)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNE_CACHE", str(tmp_path / "cache"))


def test_a_prepared_mixture_is_its_samples_stream_cut_into_windows(cache, tmp_path, tiny_tokenizer):
    """The concat windows of the demo recipe are the unpacked samples, in the same training order, cut."""
    common = ["data.cache=false", "data.eval_fraction=0", f"output.dir={tmp_path / 'run'}", "data.max_seq_len=1024"]
    whole = prepare_data(load_recipe("tiny/sft-lora", common).recipe, tiny_tokenizer)
    windows = prepare_data(load_recipe("tiny/sft-lora", [*common, "data.max_seq_len=128", "data.packing=concat"]).recipe,
                           tiny_tokenizer)
    reference = chunk_stream([{"input_ids": row["input_ids"], "loss_mask": [int(label != M) for label in row["labels"]]}
                              for row in whole.train], 128)
    assert [(row["input_ids"], [int(label != M) for label in row["labels"]]) for row in windows.train] == reference
    report = windows.report
    assert report.windows == len(windows.train) > 5 and report.padding_fraction == 0.0
    assert any(line.startswith("concat: ") for line in report.lines())


def test_the_trainer_reads_windows_whole(tmp_path):
    """TRL must neither pack, pad nor cut a window: max_length is the window, max_seq_len + 1."""
    from tune.training.arguments import sft_config

    recipe = load_recipe("tiny/sft-lora", ["data.packing=concat", f"output.dir={tmp_path}"]).recipe
    config = sft_config(recipe, tmp_path)
    assert config.max_length == recipe.data.max_seq_len + 1 and config.packing is False and not config.padding_free


def test_dpo_refuses_concat(tmp_path, tiny_tokenizer):
    from tune.errors import UserError

    recipe = load_recipe("tiny/dpo", ["data.packing=concat", f"output.dir={tmp_path}"]).recipe
    with pytest.raises(UserError, match="data.packing: concat: DPO does not pack"):
        prepare_data(recipe, tiny_tokenizer)


def test_booleans_still_read_as_packing_modes(tmp_path):
    assert load_recipe("tiny/sft-lora", ["data.packing=true", f"output.dir={tmp_path}"]).recipe.data.packing == "isolated"
    assert load_recipe("tiny/sft-lora", ["data.packing=false", f"output.dir={tmp_path}"]).recipe.data.packing == "none"


@pytest.mark.slow
def test_a_concat_run_trains_on_whole_windows(cache, tmp_path):
    """Every batch is windows of max_seq_len + 1 tokens: no padding, no cut (tokens seen = steps x batch x 129)."""
    import json

    from tune.methods.run import run_recipe

    loaded = load_recipe("tiny/sft-lora", ["data.packing=concat", "data.max_seq_len=128", "train.max_steps=3",
                                           "train.warmup_steps=1", "data.eval_fraction=0", "logging.logging_steps=1",
                                           "train.precision=fp32", f"output.dir={tmp_path / 'run'}"])
    run_recipe(loaded)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["steps"] == 3
    assert manifest["tokens_seen"] == 3 * loaded.recipe.train.per_device_batch_size * 129
    assert manifest["data"]["report"]["windows"] >= 3 * loaded.recipe.train.per_device_batch_size
