"""After a resume the manifest's figures tell the truth: losses over every step of the run, this
process's tokens/s, the run's totals, and the sessions that made it; a torn metrics.jsonl is cut and
reported, never a traceback on every rerun.

The fast tests drive ProgressCallback exactly as transformers' Trainer does (on_train_begin,
on_step_end, on_log with the mean loss since the previous log, a checkpoint's trainer_state.json
written with ``state()`` and read back by ``TrainerState.load_from_json``); the slow one trains the
tiny twin, interrupts it and compares the manifest with an uninterrupted run's.
"""

import json
import shutil
from pathlib import Path

import pytest
from transformers import TrainerState

from tune.methods.finish import done_line
from tune.training.progress import ProgressCallback, read_metrics

LOSSES = [4.0, 3.5, 3.25, 3.0, 2.75, 2.5, 2.0, 1.75, 1.5, 1.25]  # the loss of steps 1..10
TOKENS = [100, 120, 90, 110, 100, 130, 80, 100, 120, 100]  # tokens trained at steps 1..10


class Session:
    """One process training steps ``start + 1 .. stop`` the way Trainer drives its callbacks."""

    def __init__(self, metrics: Path, checkpoint: Path | None, logging_steps: int, clock):
        self.printed = []
        self.progress = ProgressCallback(metrics, printer=self.printed.append)
        self.logging_steps, self.clock = logging_steps, clock
        if checkpoint is None:
            self.state = TrainerState(stateful_callbacks=[self.progress])
        else:
            self.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
        self.state.max_steps = len(LOSSES)
        self.progress.on_train_begin(None, self.state, None)
        self.begun = self.state.global_step

    def train(self, stop: int, save_at: tuple[int, ...], checkpoints: Path) -> None:
        pending = []
        last_logged = self.state.global_step
        for step in range(self.state.global_step + 1, stop + 1):
            self.clock.advance(0.5)
            self.state.global_step = step
            self.state.num_input_tokens_seen = (self.state.num_input_tokens_seen or 0) + TOKENS[step - 1]
            pending.append(LOSSES[step - 1])
            self.progress.on_step_end(None, self.state, None)
            if step == 1 or step % self.logging_steps == 0:
                logs = {"loss": sum(pending) / (step - last_logged), "learning_rate": 1e-4, "grad_norm": 1.0}
                pending, last_logged = [], step
                self.progress.on_log(None, self.state, None, logs=logs)
            if step in save_at:  # Trainer._save_checkpoint: the callback's state goes into trainer_state.json
                self.state.stateful_callbacks[type(self.progress).__name__] = self.progress.state()
                folder = checkpoints / f"checkpoint-{step}"
                folder.mkdir(parents=True)
                self.state.save_to_json(str(folder / "trainer_state.json"))

    def figures(self) -> dict:
        steps = self.state.global_step - self.begun
        mean = sum(LOSSES[self.begun:self.state.global_step]) / steps if steps else 0.0
        return self.progress.run_figures(self.state, mean, 0.5 * steps)


class Clock:
    def __init__(self, monkeypatch):
        self.now = 1000.0
        monkeypatch.setattr("tune.training.progress.time.perf_counter", lambda: self.now)

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)


def uninterrupted(tmp_path, clock, logging_steps):
    run = Session(tmp_path / "whole" / "metrics.jsonl", None, logging_steps, clock)
    run.train(10, (), tmp_path / "whole" / "checkpoints")
    return run.figures()


def test_one_session_reports_what_the_trainer_measured(tmp_path, clock):
    figures = uninterrupted(tmp_path, clock, logging_steps=1)
    assert figures["steps"] == 10 and figures["tokens_seen"] == sum(TOKENS)
    assert figures["mean_train_loss"] == pytest.approx(sum(LOSSES) / 10) and figures["mean_train_loss_steps"] == 10
    assert figures["final_train_loss"] == LOSSES[-1]
    assert figures["resumed_from_step"] is None
    assert figures["tokens_per_s"] == pytest.approx(sum(TOKENS) / 5.0, abs=0.05)
    assert figures["sessions"] == [{"from_step": 0, "to_step": 10, "tokens": sum(TOKENS), "train_time_s": 5.0}]
    assert figures["run_train_time_s"] == 5.0


@pytest.mark.parametrize("logging_steps", [1, 2])
def test_a_resumed_run_reports_losses_over_all_steps_and_this_process_tokens_per_s(tmp_path, clock, logging_steps):
    whole = uninterrupted(tmp_path, clock, logging_steps)
    run_dir = tmp_path / "run"
    first = Session(run_dir / "metrics.jsonl", None, logging_steps, clock)
    first.train(6, (4,), run_dir / "checkpoints")  # checkpoint at 4, killed after step 6
    second = Session(run_dir / "metrics.jsonl", run_dir / "checkpoints" / "checkpoint-4", logging_steps, clock)
    second.train(10, (), run_dir / "checkpoints")
    figures = second.figures()
    for key in ("steps", "tokens_seen", "mean_train_loss", "mean_train_loss_steps", "final_train_loss"):
        assert figures[key] == pytest.approx(whole[key]), key
    # what the manifest said before: the trainer's own mean, over this process's steps 5..10 only
    assert figures["mean_train_loss"] != pytest.approx(sum(LOSSES[4:]) / 6)
    resumed_tokens = sum(TOKENS[4:])
    assert figures["resumed_from_step"] == 4
    assert figures["tokens_per_s"] == pytest.approx(resumed_tokens / 3.0, abs=0.05)  # not all tokens / 3 s
    assert figures["train_time_s"] == 3.0
    assert figures["sessions"] == [
        {"from_step": 0, "to_step": 4, "tokens": sum(TOKENS[:4]), "train_time_s": 2.0},  # up to its checkpoint
        {"from_step": 4, "to_step": 10, "tokens": resumed_tokens, "train_time_s": 3.0},
    ]
    assert figures["run_train_time_s"] == 5.0
    kept = [record["step"] for record in read_metrics(run_dir / "metrics.jsonl")[0]]
    assert kept == ([1, 2, 4, 6, 8, 10] if logging_steps == 2 else list(range(1, 11)))  # nothing twice


def test_three_sessions_chain_their_records(tmp_path, clock):
    run_dir = tmp_path / "run"
    first = Session(run_dir / "metrics.jsonl", None, 1, clock)
    first.train(3, (3,), run_dir / "checkpoints")
    second = Session(run_dir / "metrics.jsonl", run_dir / "checkpoints" / "checkpoint-3", 1, clock)
    second.train(8, (6,), run_dir / "checkpoints")
    third = Session(run_dir / "metrics.jsonl", run_dir / "checkpoints" / "checkpoint-6", 1, clock)
    third.train(10, (), run_dir / "checkpoints")
    figures = third.figures()
    assert [(s["from_step"], s["to_step"]) for s in figures["sessions"]] == [(0, 3), (3, 6), (6, 10)]
    assert figures["mean_train_loss"] == pytest.approx(sum(LOSSES) / 10) and figures["mean_train_loss_steps"] == 10
    assert figures["tokens_seen"] == sum(TOKENS)


def test_steps_never_logged_before_a_checkpoint_are_not_claimed(tmp_path, clock):
    run_dir = tmp_path / "run"
    first = Session(run_dir / "metrics.jsonl", None, 2, clock)
    first.train(5, (5,), run_dir / "checkpoints")  # logs at 1, 2, 4; step 5's loss dies with the process
    second = Session(run_dir / "metrics.jsonl", run_dir / "checkpoints" / "checkpoint-5", 2, clock)
    second.train(10, (), run_dir / "checkpoints")
    figures = second.figures()
    assert figures["steps"] == 10 and figures["mean_train_loss_steps"] == 9
    assert figures["mean_train_loss"] == pytest.approx((sum(LOSSES) - LOSSES[4]) / 9)


def test_a_process_that_trains_no_step_reports_no_throughput(tmp_path, clock):
    run_dir = tmp_path / "run"
    first = Session(run_dir / "metrics.jsonl", None, 1, clock)
    first.train(10, (10,), run_dir / "checkpoints")
    again = Session(run_dir / "metrics.jsonl", run_dir / "checkpoints" / "checkpoint-10", 1, clock)
    figures = again.progress.run_figures(again.state, 0.0, 0.0)  # what train() returns when nothing is left
    assert figures["tokens_per_s"] is None and figures["steps"] == 10
    assert figures["mean_train_loss"] == pytest.approx(sum(LOSSES) / 10)
    assert figures["final_train_loss"] == LOSSES[-1]  # from the kept lines: this process logged nothing
    assert len(figures["sessions"]) == 1
    manifest = {**figures, "wall_time_s": 3.2}
    assert done_line(manifest) == "done: 10 steps (resumed at step 10) in 3 s, final loss 1.2500, - tokens/s"


def test_a_checkpoint_from_before_the_record_resumes_with_the_kept_lines(tmp_path, clock):
    run_dir = tmp_path / "run"
    first = Session(run_dir / "metrics.jsonl", None, 1, clock)
    first.train(4, (4,), run_dir / "checkpoints")
    state_file = run_dir / "checkpoints" / "checkpoint-4" / "trainer_state.json"
    old = json.loads(state_file.read_text())
    old["stateful_callbacks"].pop("ProgressCallback")  # as tune wrote it before this record existed
    state_file.write_text(json.dumps(old))
    second = Session(run_dir / "metrics.jsonl", state_file.parent, 1, clock)
    assert "ProgressCallback" in second.state.stateful_callbacks  # else Trainer's next save raises KeyError
    second.train(10, (), run_dir / "checkpoints")
    figures = second.figures()
    assert figures["mean_train_loss"] == pytest.approx(sum(LOSSES) / 10)
    assert figures["sessions"][0] == {"from_step": None, "to_step": 4, "tokens": None, "train_time_s": None}
    assert figures["run_train_time_s"] is None


def test_a_torn_last_line_is_cut_and_reported_and_the_run_goes_on(tmp_path, clock):
    run_dir = tmp_path / "run"
    first = Session(run_dir / "metrics.jsonl", None, 1, clock)
    first.train(6, (4,), run_dir / "checkpoints")
    metrics = run_dir / "metrics.jsonl"
    with open(metrics, "a") as handle:
        handle.write('{"step": 7, "epoch": 0.7, "lo')  # the process died mid-write
    second = Session(metrics, run_dir / "checkpoints" / "checkpoint-4", 1, clock)
    assert len(second.printed) == 1
    assert f"{metrics}:7:" in second.printed[0] and "torn" in second.printed[0]
    assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == [1, 2, 3, 4]
    second.train(10, (), run_dir / "checkpoints")
    assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == list(range(1, 11))


def test_damaged_lines_are_dropped_with_their_line_numbers(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_bytes(b'{"step": 1, "loss": 2.0}\n\xff\xfe not json\n[1, 2]\n{"step": "2"}\n'
                        b'{"step": 3, "loss": 1.0}\n{"step": 4, "loss": 0.5}')  # a whole last record, no newline: kept
    records, problems = read_metrics(metrics)
    assert [record["step"] for record in records] == [1, 3, 4]
    assert [problem.split(": ")[0] for problem in problems] == [f"{metrics}:2", f"{metrics}:3", f"{metrics}:4"]
    assert all("dropped" in problem for problem in problems)
    assert read_metrics(tmp_path / "none.jsonl") == ([], [])


def test_only_the_main_process_writes_metrics(tmp_path, clock):
    run = Session(tmp_path / "metrics.jsonl", None, 1, clock)
    run.state.is_world_process_zero = False
    run.train(2, (), tmp_path / "checkpoints")
    assert (tmp_path / "metrics.jsonl").read_text() == "" and run.printed == []


def test_a_manifest_cut_short_never_appears(tmp_path, monkeypatch):
    from tune.training.manifest import write_manifest

    real_write = Path.write_text

    def dying_write(self, text, *args, **kwargs):  # the process is killed halfway through the write
        real_write(self, text[: len(text) // 2], *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", dying_write)
    with pytest.raises(KeyboardInterrupt):
        write_manifest(tmp_path / "manifest.json", steps=3)
    monkeypatch.undo()
    assert not (tmp_path / "manifest.json").exists()  # the folder still reads as an unfinished run
    write_manifest(tmp_path / "manifest.json", steps=3)
    assert json.loads((tmp_path / "manifest.json").read_text())["steps"] == 3


# --- a real run, interrupted -------------------------------------------------------------------

ROWS = [
    {"messages": [{"role": "user", "content": "日本の首都は？"}, {"role": "assistant", "content": "東京です。"}]},
    {"messages": [{"role": "user", "content": "What is 2+3?"}, {"role": "assistant", "content": "2+3 is 5."}]},
    {"messages": [{"role": "system", "content": "Be short."}, {"role": "user", "content": "Say hi"},
                  {"role": "assistant", "content": "Hi!"}]},
]


@pytest.mark.slow
def test_a_resumed_real_run_reports_the_losses_of_every_step_and_its_own_throughput(tmp_path, monkeypatch, capsys):
    from tune.methods.run import run_recipe
    from tune.recipe import load_recipe

    monkeypatch.setenv("TUNE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ROWS))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "model: {name: tiny-llm-jp-4-8b}\n"
        "method: {name: sft, peft: lora, lora: {r: 8, alpha: 16, dropout: 0.0}}\n"
        "data: {datasets: [{path: rows.jsonl, weight: 8}], max_seq_len: 128}\n"
        "train: {max_steps: 6, lr: 1.0e-3, warmup_steps: 0, per_device_batch_size: 4, precision: fp32}\n"
        "output: {save_steps: 3, save_total_limit: 3}\n"
        "logging: {logging_steps: 2}\n"
    )
    whole_dir, run_dir = tmp_path / "whole", tmp_path / "run"
    # the same training logged at every step: each step's own loss
    whole = run_recipe(load_recipe(recipe, [f"output.dir={whole_dir}", "logging.logging_steps=1"])).manifest
    loss = {record["step"]: record["loss"] for record in read_metrics(whole_dir / "metrics.jsonl")[0]}
    run_recipe(load_recipe(recipe, [f"output.dir={run_dir}"]))
    # interrupted right after checkpoint-3, while writing the log line of step 6
    (run_dir / "manifest.json").unlink()
    shutil.rmtree(run_dir / "final")
    shutil.rmtree(run_dir / "checkpoints" / "checkpoint-6")
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 6, "lo')
    capsys.readouterr()
    resumed = run_recipe(load_recipe(recipe, [f"output.dir={run_dir}"])).manifest
    printed = capsys.readouterr().out
    assert f"{run_dir / 'metrics.jsonl'}:5: its last line was torn" in printed
    assert "done: 6 steps (resumed at step 3)" in printed
    assert json.loads((run_dir / "manifest.json").read_text())["mean_train_loss"] == resumed["mean_train_loss"]
    assert resumed["steps"] == whole["steps"] == 6 and resumed["tokens_seen"] == whole["tokens_seen"]
    # logged: steps 1 and 2 before the checkpoint, 4 to 6 after it; step 3 fell between two log lines
    assert resumed["mean_train_loss_steps"] == 5
    expected = (loss[1] + loss[2] + loss[4] + loss[5] + loss[6]) / 5
    assert resumed["mean_train_loss"] == pytest.approx(expected, abs=1e-5)
    assert resumed["final_train_loss"] == pytest.approx((loss[5] + loss[6]) / 2, abs=1e-5)
    assert whole["mean_train_loss"] == pytest.approx(sum(loss.values()) / 6, abs=1e-5)
    sessions = resumed["sessions"]
    assert [(s["from_step"], s["to_step"]) for s in sessions] == [(0, 3), (3, 6)] and resumed["resumed_from_step"] == 3
    assert sessions[0]["tokens"] + sessions[1]["tokens"] == resumed["tokens_seen"] and sessions[1]["tokens"] > 0
    # this session's tokens over its time (train_time_s is rounded to 10 ms, a few % of a sub-second session);
    # the old figure divided every token of the run by it, about twice as much here
    assert resumed["tokens_per_s"] == pytest.approx(sessions[1]["tokens"] / resumed["train_time_s"], rel=0.05)
    assert resumed["run_train_time_s"] == pytest.approx(sessions[0]["train_time_s"] + resumed["train_time_s"],
                                                        abs=0.02)
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")[0]] == [1, 2, 4, 6]
