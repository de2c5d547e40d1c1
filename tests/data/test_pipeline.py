"""The one pipeline: several processes give byte-identical data, progress shows while it works,
the prepared sets are memory-mapped Arrow files, and nothing is left in the work folders."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tune.data import preparation_progress
from tune.data.pipeline import prepare_data
from tune.data.preparation_progress import Progress
from tune.recipe import load_recipe


def prepared_files(prepared) -> list[bytes]:
    return [Path(part.cache_files[0]["filename"]).read_bytes() for part in (prepared.train, prepared.eval)]


@pytest.mark.parametrize("recipe, overrides", [
    ("tiny/sft-lora", ["data.eval_fraction=0.2", "data.datasets.2.weight=2.5"]),
    ("tiny/dpo", ["data.eval_fraction=0.3"]),
])
def test_several_processes_prepare_byte_identical_data(recipe, overrides, tmp_path, monkeypatch, tiny_tokenizer):
    monkeypatch.setenv("TUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("tune.data.build_samples.SAMPLE_BATCH", 4)  # many chunks, so the workers interleave
    runs = {}
    for processes in (1, 3):
        loaded = load_recipe(recipe, [*overrides, f"data.num_proc={processes}", "data.cache=false",
                                      f"output.dir={tmp_path / 'run'}"])
        runs[processes] = prepare_data(loaded.recipe, tiny_tokenizer)
    one, three = runs[1], runs[3]
    assert one.key == three.key  # data.num_proc is not part of what shapes the data
    assert prepared_files(one) == prepared_files(three)
    assert one.report.to_dict() == three.report.to_dict()
    assert len(one.train) > 10 and len(one.eval) > 0


def test_prepared_sets_are_memory_mapped_and_the_work_files_are_gone(tmp_path, monkeypatch, tiny_tokenizer):
    monkeypatch.setenv("TUNE_CACHE", str(tmp_path / "cache"))
    prepared = prepare_data(load_recipe("tiny/sft-lora", [f"output.dir={tmp_path / 'run'}"]).recipe, tiny_tokenizer)
    folder = tmp_path / "cache" / "data" / prepared.key
    assert sorted(p.name for p in folder.iterdir()) == ["checksums.json", "eval.arrow", "report.json", "train.arrow",
                                                        "train_lengths.npy"]
    assert Path(prepared.train.cache_files[0]["filename"]) == folder / "train.arrow"
    assert [p.name for p in (tmp_path / "cache" / "data").iterdir()] == [prepared.key]  # no staging left


def test_a_failed_preparation_leaves_no_staging_folder(tmp_path, monkeypatch, tiny_tokenizer):
    monkeypatch.setenv("TUNE_CACHE", str(tmp_path / "cache"))
    loaded = load_recipe("tiny/sft-lora", ["data.max_seq_len=16", f"output.dir={tmp_path / 'run'}"])
    with pytest.raises(Exception, match="no trainable sample left"):
        prepare_data(loaded.recipe, tiny_tokenizer)
    assert list((tmp_path / "cache" / "data").iterdir()) == []


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_in_a_log_writes_a_line_every_interval_and_a_last_one():
    stream, clock = io.StringIO(), Clock()
    progress = Progress("rendering card x", 1000, stream=stream, interval=10, clock=clock)
    clock.now = 5
    progress.advance(100)
    assert stream.getvalue() == ""  # a short step stays silent
    clock.now = 10
    progress.advance(150)
    clock.now = 20
    progress.advance(250)
    clock.now = 25
    progress.advance(500)
    progress.close()
    assert stream.getvalue().splitlines() == [
        "data: rendering card x: 250/1,000 rows (25%), 25 rows/s, ETA 0:00:30",
        "data: rendering card x: 500/1,000 rows (50%), 25 rows/s, ETA 0:00:20",
        "data: rendering card x: 1,000/1,000 rows (100%), 40 rows/s, done in 0:00:25",
    ]


def test_a_short_step_in_a_log_prints_nothing():
    stream = io.StringIO()
    progress = Progress("reading x", None, stream=stream, interval=10, clock=Clock())
    progress.advance(5)
    progress.close()
    assert stream.getvalue() == ""


def test_progress_on_a_terminal_is_a_bar_redrawn_in_place_and_cleared():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream, clock = Terminal(), Clock()
    progress = Progress("rendering card x", 40, stream=stream, clock=clock)
    clock.now = 1
    progress.advance(10)
    progress.close()
    assert stream.getvalue() == ("\r\033[K[######..................] data: rendering card x: 10/40 rows (25%), "
                                 "10 rows/s, ETA 0:00:03\r\033[K")


def test_preparation_reports_progress_per_dataset_and_step(tmp_path, monkeypatch, capsys, tiny_tokenizer):
    monkeypatch.setenv("TUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(preparation_progress, "LOG_INTERVAL_S", 0.0)
    loaded = load_recipe("tiny/sft-lora", ["data.cache=false", f"output.dir={tmp_path / 'run'}"])
    prepare_data(loaded.recipe, tiny_tokenizer)
    err = capsys.readouterr().err.splitlines()
    for label in (entry.card or entry.path for entry in loaded.recipe.data.datasets):
        assert any(line.startswith("data: reading ") and label in line for line in err), label
        assert any(line.startswith("data: rendering ") and label in line and "rows/s" in line for line in err), label
