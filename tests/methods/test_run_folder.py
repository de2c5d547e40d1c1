"""`tune run` and its output.dir, without training: who may write there, what a rerun continues, what it refuses.

Interrupted runs are built by hand here (the marker, the recorded recipe, a complete checkpoint), as
a run killed after its checkpoint leaves them; tests/methods/test_resume.py trains real ones.
"""

import json
import os
import time
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import MINIMAL_RECIPE
from tune.config.problems import RecipeError
from tune.errors import UserError
from tune.methods.run import run_recipe
from tune.methods.run_folder_plan import (RESUME, START, START_OVER, continue_command, continue_default_run,
                                          plan_run_folder, prepare_run_folder, record_recipe)
from tune.recipe import load_recipe
from tune.training.folder_lease import LEASE, MARKER, mark_run_folder, this_process
from tune.training.resume import mark_complete


def interrupted_run(loaded, step: int = 4, finished: bool = False) -> Path:
    """The folder a run of ``loaded`` leaves when killed right after its checkpoint at ``step``."""
    run_dir = Path(loaded.recipe.output.dir)
    mark_run_folder(run_dir)
    record_recipe(run_dir, loaded)
    checkpoint = run_dir / "checkpoints" / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    (checkpoint / "adapter_model.safetensors").write_bytes(b"w" * 32)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": 12}))
    mark_complete(checkpoint)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(1, step + 1)))
    if finished:
        (run_dir / "final").mkdir()
        (run_dir / "manifest.json").write_text("{}\n")
    return run_dir


@pytest.fixture
def recipe_file(write_recipe):
    return write_recipe(MINIMAL_RECIPE + "train:\n  max_steps: 12\noutput:\n  save_steps: 4\n")


def test_a_folder_that_is_not_a_run_is_refused_and_left_untouched(recipe_file, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "recipe.yaml").write_text("model: {name: my-own-notes}\n")
    with pytest.raises(UserError, match=r"is not empty \(recipe.yaml\) and is not a tune run folder"):
        run_recipe(load_recipe(recipe_file, [f"output.dir={folder}"]))
    assert [p.name for p in folder.iterdir()] == ["recipe.yaml"]
    assert (folder / "recipe.yaml").read_text() == "model: {name: my-own-notes}\n"


def test_an_output_dir_that_is_a_file_is_refused(recipe_file, tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        run_recipe(load_recipe(recipe_file, [f"output.dir={tmp_path / 'taken'}"]))


def test_a_second_run_into_a_folder_in_use_exits_2_naming_the_holder(recipe_file, tmp_path, capsys):
    from tune.cli import main

    run_dir = tmp_path / "run"
    mark_run_folder(run_dir)
    holder = replace(this_process(), host="abci-node-0042", pid=4242)
    (run_dir / LEASE).write_text(json.dumps({**asdict(holder), "token": "t", "heartbeat": time.time() - 20}))
    assert main(["run", str(recipe_file), f"output.dir={run_dir}"]) == 2
    err = capsys.readouterr().err
    assert "is in use" in err and "process 4242 on host abci-node-0042, heartbeat 20 s ago" in err
    assert "--break-lock" in err and "Traceback" not in err
    assert sorted(p.name for p in run_dir.iterdir()) == [LEASE, MARKER]  # nothing written by the refused run


def test_a_rerun_with_another_seed_lr_and_length_is_refused_naming_each_key(recipe_file, tmp_path):
    loaded = load_recipe(recipe_file, [f"output.dir={tmp_path / 'run'}"])
    run_dir = interrupted_run(loaded)
    recorded = (run_dir / "recipe.yaml").read_bytes()
    changed = load_recipe(recipe_file, [f"output.dir={run_dir}", "train.seed=7", "train.lr=1e-3", "data.max_seq_len=512"])
    with pytest.raises(RecipeError) as refused:
        run_recipe(changed)
    lines = refused.value.lines()
    assert [line.split(": ")[1] for line in lines[:3]] == ["data.max_seq_len", "train.lr", "train.seed"]
    assert "512 here, 4096 in the interrupted run" in lines[0] and "(checkpoint-4)" in lines[0]
    assert lines[0].startswith("command-line override `data.max_seq_len=512`")
    assert f"`tune run {run_dir / 'recipe.yaml'}` continues it as it was" in lines[3]
    assert (run_dir / "recipe.yaml").read_bytes() == recorded  # the record still describes the run
    assert not (run_dir / LEASE).exists()


def test_a_full_sft_of_the_8b_twin_is_refused_in_an_interrupted_moe_lora_run(write_recipe, tmp_path):
    moe = write_recipe(MINIMAL_RECIPE.replace("tiny-llm-jp-4-8b", "tiny-llm-jp-4-32b-a3b")
                       + "method: {peft: lora, lora: {dropout: 0}}\n", name="moe.yaml")
    run_dir = interrupted_run(load_recipe(moe, [f"output.dir={tmp_path / 'run'}"]))
    dense = write_recipe(MINIMAL_RECIPE, name="dense.yaml")
    with pytest.raises(RecipeError) as refused:
        run_recipe(load_recipe(dense, [f"output.dir={run_dir}"]))
    keys = [problem.key for problem in refused.value.problems]
    assert "model.name" in keys and "method.peft" in keys


def test_train_resume_false_over_an_interrupted_run_is_refused(recipe_file, tmp_path):
    run_dir = interrupted_run(load_recipe(recipe_file, [f"output.dir={tmp_path / 'run'}"]))
    with pytest.raises(UserError, match="train.resume is false: set output.overwrite=true"):
        run_recipe(load_recipe(recipe_file, [f"output.dir={run_dir}", "train.resume=false"]))


def test_checkpoints_without_a_readable_record_are_refused(recipe_file, tmp_path):
    loaded = load_recipe(recipe_file, [f"output.dir={tmp_path / 'run'}"])
    run_dir = interrupted_run(loaded)
    (run_dir / "recipe.yaml").write_text("model: [unclosed\n")
    with pytest.raises(UserError, match="is not valid YAML .* nothing tells what that checkpoint continues"):
        plan_run_folder(run_dir, loaded)


def test_a_finished_run_is_refused_unless_overwrite(recipe_file, tmp_path):
    run_dir = interrupted_run(load_recipe(recipe_file, [f"output.dir={tmp_path / 'run'}"]), finished=True)
    with pytest.raises(UserError, match="already holds a finished run"):
        run_recipe(load_recipe(recipe_file, [f"output.dir={run_dir}"]))


def test_allowed_changes_resume_are_listed_and_recorded_and_torn_checkpoints_go(recipe_file, tmp_path):
    loaded = load_recipe(recipe_file, [f"output.dir={tmp_path / 'run'}"])
    run_dir = interrupted_run(loaded)
    torn = run_dir / "checkpoints" / "checkpoint-8"
    torn.mkdir()
    (torn / "trainer_state.json").write_text('{"global_st')
    rerun = load_recipe(recipe_file, [f"output.dir={run_dir}", "logging.logging_steps=1", "output.save_steps=2"])
    plan = plan_run_folder(run_dir, rerun)
    assert plan.action == RESUME and plan.checkpoint.name == "checkpoint-4"
    said = []
    prepare_run_folder(plan, rerun, said.append)
    assert f"resuming the interrupted run in {run_dir} from checkpoint-4" in said[0]
    assert "removed incomplete checkpoint(s) checkpoint-8" in said[1] and not torn.exists()
    assert "output.save_steps: 4 -> 2; logging.logging_steps: 10 -> 1" in said[2]
    recorded = load_recipe(run_dir / "recipe.yaml").recipe
    assert recorded.logging.logging_steps == 1 and recorded.output.save_steps == 2


def test_overwrite_starts_over_says_so_and_is_not_recorded(recipe_file, tmp_path):
    run_dir = interrupted_run(load_recipe(recipe_file, [f"output.dir={tmp_path / 'run'}"]), finished=True)
    (run_dir / "notes.txt").write_text("mine")
    again = load_recipe(recipe_file, [f"output.dir={run_dir}", "output.overwrite=true", "train.seed=3"])
    plan = plan_run_folder(run_dir, again)
    assert plan.action == START_OVER
    said = []
    prepare_run_folder(plan, again, said.append)
    assert "output.overwrite=true: starting over" in said[0] and "the earlier finished run" in said[0]
    assert said[1] == "run folder: removed manifest.json, final, checkpoints, metrics.jsonl, recipe.yaml"
    assert sorted(p.name for p in run_dir.iterdir()) == ["notes.txt", "recipe.yaml", MARKER]
    text = (run_dir / "recipe.yaml").read_text()
    assert "overwrite: false" in text and "output.overwrite" not in text and "seed: 3" in text
    # once the new run has a checkpoint, a job resubmitted from the record continues it instead of wiping it
    checkpoint = run_dir / "checkpoints" / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text('{"global_step": 2}')
    mark_complete(checkpoint)
    assert plan_run_folder(run_dir, load_recipe(run_dir / "recipe.yaml")).action == RESUME


def test_a_run_killed_before_its_first_checkpoint_starts_over_there(recipe_file, tmp_path):
    loaded = load_recipe(recipe_file, [f"output.dir={tmp_path / 'run'}"])
    run_dir = interrupted_run(loaded)
    (run_dir / "checkpoints" / "checkpoint-4" / "tune-complete.json").unlink()
    plan = plan_run_folder(run_dir, load_recipe(recipe_file, [f"output.dir={run_dir}", "train.seed=5"]))
    assert plan.action == START_OVER and "interrupted before its first complete checkpoint" in plan.why


def test_an_empty_or_new_folder_starts_a_run(recipe_file, tmp_path):
    assert plan_run_folder(tmp_path / "new", load_recipe(recipe_file)).action == START
    (tmp_path / "empty").mkdir()
    assert plan_run_folder(tmp_path / "empty", load_recipe(recipe_file)).action == START


def test_the_command_an_interruption_prints_continues_the_run_exactly(recipe_file, tmp_path):
    loaded = load_recipe(recipe_file, [f"output.dir={tmp_path / 'my run'}", "logging.logging_steps=2"])
    run_dir = interrupted_run(loaded)
    command = continue_command(loaded, run_dir)
    assert command == f"tune run '{run_dir / 'recipe.yaml'}'"
    again = load_recipe(run_dir / "recipe.yaml")
    plan = plan_run_folder(Path(again.recipe.output.dir), again)
    assert plan.action == RESUME and plan.allowed == []


def runs_of(recipe_file, names: list[str]):
    """Interrupted runs of ``recipe_file`` under runs/ (cwd), the later in the list the newer."""
    folders = []
    for index, name in enumerate(names):
        folder = recipe_file.parent / "runs" / name
        interrupted_run(load_recipe(recipe_file, [f"output.dir={folder}"]))
        os.utime(folder / MARKER, (1_700_000_000 + index, 1_700_000_000 + index))
        folders.append(folder)
    return folders


def test_the_same_command_without_output_dir_continues_the_newest_matching_run(recipe_file, monkeypatch):
    monkeypatch.chdir(recipe_file.parent)
    older, newer, finished = runs_of(recipe_file, ["recipe-20260101-000000", "recipe-20260102-000000",
                                                   "recipe-20260103-000000"])
    (finished / "manifest.json").write_text("{}\n")
    loaded = load_recipe(recipe_file.name, now=datetime(2026, 2, 1))
    assert not loaded.output_dir_given
    said = []
    continued = continue_default_run(loaded, said.append)
    assert continued.recipe.output.dir == str(newer)
    assert said == [f"run folder: continuing the interrupted run in {newer} (same recipe, output.dir not given; "
                    "for a new run give output.dir=...)"]
    assert plan_run_folder(newer, continued).action == RESUME
    holder = replace(this_process(), host="abci-node-0042", pid=4242)  # the newer one is in use elsewhere
    (newer / LEASE).write_text(json.dumps({**asdict(holder), "token": "t", "heartbeat": time.time()}))
    assert continue_default_run(loaded, said.append).recipe.output.dir == str(older)


def test_without_a_matching_run_a_new_folder_is_used_and_the_nearest_miss_named(recipe_file, monkeypatch):
    monkeypatch.chdir(recipe_file.parent)
    (other,) = runs_of(recipe_file, ["recipe-20260101-000000"])
    loaded = load_recipe(recipe_file.name, ["train.seed=9"], now=datetime(2026, 2, 1))
    said = []
    assert continue_default_run(loaded, said.append) is loaded
    assert said == [f"run folder: not continuing the interrupted run in {other}: its recipe differs in "
                    f"train.seed: 42 -> 9; a new run starts in {loaded.recipe.output.dir}"]
    given = load_recipe(recipe_file.name, [f"output.dir={recipe_file.parent / 'runs' / 'x'}"])
    assert continue_default_run(given, said.append) is given  # an explicit output.dir is never redirected
