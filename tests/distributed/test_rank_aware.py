"""Rank-aware runs (tune.methods.run, tune.training.distributed, tune.data.cache): a `tune run` of 2
processes (torchrun, gloo, DDP) on the tiny full SFT makes one run folder, decided once, written by one
process, with the data prepared once and every report printed once; the same command again (a
resubmitted job) continues that folder from its checkpoint and trains the same losses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.distributed.conftest import fresh_rows, launch, launch_nodes, write_job_recipe
from tune.cache_dir import cache_root

pytestmark = pytest.mark.multiprocess


def snapshot(folder: Path) -> dict:
    """What the tests read from a finished job's folder, taken before anything changes it."""
    runs = sorted((folder / "runs").iterdir())
    run = runs[0]
    return {
        "runs": [p.name for p in runs],
        "metrics": (run / "metrics.jsonl").read_text().splitlines(),
        "files": sorted(p.name for p in run.iterdir()),
        "final": sorted(p.name for p in (run / "final").iterdir()),
        "checkpoints": sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("checkpoint-")),
        "manifest": json.loads((run / "manifest.json").read_text()),
        "builds": (folder / "builds").read_text().split() if (folder / "builds").exists() else [],
    }


@pytest.fixture(scope="session")
def first_job(tmp_path_factory, chat_rows):
    """A 3-step job of 2 processes without `output.dir`, its data preparation longer than the collective
    timeout (then a snapshot of what it left), and a second
    job of the same command after the run was cut back to its checkpoint at step 2 (a resubmission),
    then a third that starts over in that folder (`output.overwrite=true`)."""
    folder = tmp_path_factory.mktemp("job")
    # collectives time out after 30 s; rank 0's preparation takes 40 s longer than it would (rank 1 waits
    # on the file system meanwhile, never in a collective)
    recipe = write_job_recipe(folder, chat_rows, launch="timeout_minutes: 0.5")
    env = {"TUNE_TEST_COUNT_BUILDS": str(folder / "builds"), "TUNE_TEST_EXIT_FILE": str(folder / "exits")}
    first = launch(["run", str(recipe)], cwd=folder, env={**env, "TUNE_TEST_SLOW_BUILD": "40"}, worker=True)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    before = snapshot(folder)
    run = folder / "runs" / before["runs"][0]
    # an interruption after checkpoint-2: what a job killed in step 3 leaves
    shutil.rmtree(run / "final")
    shutil.rmtree(run / "checkpoints" / "checkpoint-3")
    (run / "manifest.json").unlink()
    (folder / "builds").unlink()
    second = launch(["run", str(recipe)], cwd=folder, env=env, worker=True)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    after = snapshot(folder)
    exits = (folder / "exits").read_text().split("\n")
    # starting over in the same folder: rank 0 removes the checkpoints before rank 1 looks for one
    third = launch(["run", str(recipe), f"output.dir={run}", "output.overwrite=true"], cwd=folder)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    return {"first": first, "before": before, "second": second, "after": after, "exits": exits,
            "third": third, "over": snapshot(folder)}


def test_one_run_folder_for_the_job_written_once(first_job):
    before = first_job["before"]
    assert len(before["runs"]) == 1  # both ranks write into the main rank's default folder
    steps = [json.loads(line)["step"] for line in before["metrics"]]
    assert steps == [1, 2, 3]  # one line per logged step
    assert {"recipe.yaml", "manifest.json", "metrics.jsonl", "final", "checkpoints", "tune-run.json"} <= set(before["files"])
    assert "tune-lease.json" not in before["files"]
    assert {"model.safetensors", "tokenizer.json", "README.md", "training_curve.svg"} <= set(before["final"])
    assert before["checkpoints"] == ["checkpoint-2", "checkpoint-3"]
    assert before["manifest"]["steps"] == 3


def test_data_is_prepared_once_and_reports_print_once(first_job):
    assert first_job["before"]["builds"] == ["0"]  # rank 0 prepared; rank 1 read the cache entry
    # rank 1 said once what it waited for (its first minute), and the 40 s wait met no 30 s timeout
    assert first_job["first"].stderr.count("data: waiting for rank 0 to prepare the data into") >= 1
    out = first_job["first"].stdout
    assert out.count("data: total:") == 1
    assert out.count("run folder: new run in") == 1
    assert out.count("done: 3 steps") == 1
    assert out.count("step     3/3") == 1


def test_a_resubmitted_job_continues_its_own_folder_exactly(first_job):
    before, after, second = first_job["before"], first_job["after"], first_job["second"]
    assert after["runs"] == before["runs"]  # no second timestamped folder
    assert second.stdout.count("continuing the interrupted run in") == 1
    assert "resuming from" in second.stdout and "checkpoint-2" in second.stdout
    assert after["builds"] == []  # the data came from the cache
    assert [json.loads(line)["loss"] for line in after["metrics"]] == [json.loads(line)["loss"] for line in before["metrics"]]
    assert after["manifest"]["resumed_from_step"] == 2 and after["manifest"]["steps"] == 3


def test_starting_over_trains_from_the_start_on_every_rank(first_job):
    over, before = first_job["over"], first_job["before"]
    assert "removed checkpoints" in first_job["third"].stdout or "removed " in first_job["third"].stdout
    assert "resuming from" not in first_job["third"].stdout
    assert over["manifest"]["resumed_from_step"] is None and over["manifest"]["steps"] == 3
    # both ranks began at step 0 from the same weights: the same losses as the first job
    assert [json.loads(line)["loss"] for line in over["metrics"]] == [json.loads(line)["loss"] for line in before["metrics"]]


def test_every_rank_exits_zero(first_job):
    assert sorted(line for line in first_job["exits"] if line) == ["0 0", "0 0", "1 0", "1 0"]


def test_two_nodes_with_node_local_caches_prepare_the_data_once_per_node(tmp_path):
    """2 nodes x 1 process on 127.0.0.1, node 1 with its own `$TUNE_CACHE` (its twins linked in, so that
    only the data differs): each node prepares the data once, and the job trains into one folder."""
    recipe = write_job_recipe(tmp_path, fresh_rows(tmp_path), processes=1, launch="nodes: 2", steps=2)
    node_cache = tmp_path / "node1-cache"
    node_cache.mkdir()
    (node_cache / "twins").symlink_to(cache_root() / "twins")
    builds = tmp_path / "builds"
    results = launch_nodes(["run", str(recipe), f"output.dir={tmp_path / 'run'}"], worker=True, cwd=tmp_path,
                           node_env=[{"TUNE_TEST_COUNT_BUILDS": str(builds)},
                                     {"TUNE_TEST_COUNT_BUILDS": str(builds), "TUNE_CACHE": str(node_cache)}])
    for result in results:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert sorted(builds.read_text().split()) == ["0", "1"]  # once on each node, by its first process
    assert [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert (tmp_path / "run" / "manifest.json").is_file()
    assert "done: 2 steps" in results[0].stdout and "done:" not in results[1].stdout


def test_a_failed_preparation_stops_every_rank_printing_once(tmp_path):
    """Rank 0 prepares, rank 1 waits for the cache entry; a bad row under `data.on_bad_row: error` stops
    rank 0, whose message is the only one printed, and rank 1 stops too (the failure file), both exit 2."""
    rows = fresh_rows(tmp_path)
    with open(rows, "a") as handle:
        handle.write('{"messages": "not a list"}\n')
    recipe = write_job_recipe(tmp_path, rows)
    exits = tmp_path / "exits"
    result = launch(["run", str(recipe), "data.on_bad_row=error"], cwd=tmp_path, worker=True, monitor_interval=3,
                    env={"TUNE_TEST_EXIT_FILE": str(exits)})
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error: ")]
    assert result.returncode != 0
    assert len(errors) == 1 and rows.name in errors[0], errors
    assert sorted(exits.read_text().split("\n")[:-1]) == ["0 2", "1 2"]
    assert not list((tmp_path / "runs").glob("*/metrics.jsonl"))


def test_a_lora_dpo_job_writes_its_adapter_and_records_once(tmp_path):
    """DPO with LoRA on 2 processes: one metrics line per step (with the DPO figures), the adapter
    saved once with its base recorded, the model card and the manifest written by the main rank."""
    recipe = tmp_path / "dpo.yaml"
    recipe.write_text(f"base: {Path(__file__).resolve().parents[2] / 'recipes/tiny/dpo-lora.yaml'}\n"
                      "data: {max_seq_len: 256}\n"
                      "train: {max_steps: 2, per_device_batch_size: 2, warmup_steps: 1}\n"
                      "logging: {logging_steps: 1}\nlaunch: {processes_per_node: 2}\n")
    run = tmp_path / "run"
    result = launch(["run", str(recipe), f"output.dir={run}"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2] and all("rewards/margins" in r for r in records)
    adapter = json.loads((run / "final" / "adapter_config.json").read_text())
    assert Path(adapter["base_model_name_or_path"]).is_dir()  # the tiny twin's folder, written once by rank 0
    assert "tune" in (run / "final" / "README.md").read_text().lower()
    assert json.loads((run / "manifest.json").read_text())["steps"] == 2
    assert result.stdout.count("done: 2 steps") == 1 and result.stdout.count("data: total:") == 1

    from peft import AutoPeftModelForCausalLM

    assert AutoPeftModelForCausalLM.from_pretrained(run / "final") is not None
