"""Preflight (tune.training.preflight) and the rendezvous timeout (tune.training.distributed): a job that
cannot train as its recipe says stops before the first step with one message, printed once, and every
rank exits non-zero; a job whose peer never comes fails within `launch.timeout_minutes` instead of
hanging. The pure verdict is tested on gathered facts; the jobs on 2 processes (or one process whose
peer never starts)."""

from __future__ import annotations

import time

import pytest

from tests.distributed.conftest import alone, free_port, launch, write_job_recipe
from tune.config.loaded_recipe import LoadedRecipe
from tune.recipe import load_recipe
from tune.training import distributed
from tune.training.preflight import checkpoint_bytes, folder_facts, preparation, recipe_hash, verdict


def facts(rank: int, **changes) -> dict:
    base = {"rank": rank, "node": 0, "local_rank": rank, "host": "hostA", "world_size": 2,
            "versions": {"tune": "0.1", "torch": "2.13.0", "transformers": "5.24.0", "trl": "1.0", "accelerate": "1.0",
                         "peft": "0.17"},
            "recipe": "abc", "folder": None, "cache_problem": None, "sees_cache": True}
    return {**base, **changes}


@pytest.fixture
def two_process_recipe(tmp_path):
    return load_recipe("tiny/sft-full", [f"output.dir={tmp_path / 'run'}", "launch.processes_per_node=2"]).recipe


def test_agreeing_ranks_pass(two_process_recipe):
    assert verdict([facts(0), facts(1)], two_process_recipe) == []


def test_another_version_on_one_rank_is_named_once_by_the_main_rank(two_process_recipe):
    other = facts(1, host="hostB", versions={**facts(0)["versions"], "transformers": "4.57.1"})
    problems = verdict([facts(0), other], two_process_recipe)
    assert len(problems) == 1
    owner, text = problems[0]
    assert owner == 0
    assert "transformers 4.57.1 on rank 1 (hostB), 5.24.0 on rank 0 (hostA)" in text


def test_another_recipe_and_a_wrong_world_size_are_refused(two_process_recipe):
    problems = verdict([facts(0, world_size=3), facts(1, world_size=3, recipe="xyz"), facts(2, world_size=3)],
                       two_process_recipe)
    texts = [text for _, text in problems]
    assert any("asks for 1 node(s) x 2 process(es) = 2" in t and "started with 3" in t for t in texts)
    assert any("rank 1 (hostA) resolved another recipe" in t for t in texts)
    assert {owner for owner, _ in problems} == {0}


def test_a_folder_problem_is_printed_by_the_lowest_rank_that_found_it(two_process_recipe):
    text = "output.dir /x: /x is not writable"
    problems = verdict([facts(0), facts(1, folder=text), facts(2, folder=text, host="hostB")], two_process_recipe)
    assert problems == [(1, f"preflight on rank 1 (hostA), rank 2 (hostB): {text}")]


def test_room_for_a_checkpoint(tmp_path):
    assert folder_facts(tmp_path / "run", needed=1024, checks_room=True) is None
    message = folder_facts(tmp_path / "run", needed=1 << 60, checks_room=True)
    assert "GiB free" in message and "one checkpoint of this recipe takes about" in message
    assert folder_facts(tmp_path / "run", needed=1 << 60, checks_room=False) is None
    (tmp_path / "file").write_text("x")
    assert "is a file" in folder_facts(tmp_path / "file" / "run", needed=None, checks_room=True)


def test_checkpoint_estimate_counts_weights_and_optimizer_states(tmp_path):
    full = load_recipe("tiny/sft-full", [f"output.dir={tmp_path}"]).recipe
    lora = load_recipe("tiny/sft-lora", [f"output.dir={tmp_path}"]).recipe
    from tune.models.memory import memory_estimate

    params = memory_estimate(full).trainable
    assert checkpoint_bytes(full) == int(params * 4 * 3 * 1.05)  # fp32 weights + two fp32 AdamW states
    assert checkpoint_bytes(lora) < checkpoint_bytes(full) / 5


def test_the_recipe_hash_ignores_the_output_dir_only(tmp_path):
    one = load_recipe("tiny/sft-full", [f"output.dir={tmp_path / 'a'}"])
    two = load_recipe("tiny/sft-full", [f"output.dir={tmp_path / 'b'}"])
    three = load_recipe("tiny/sft-full", [f"output.dir={tmp_path / 'a'}", "train.lr=2e-3"])
    assert recipe_hash(one) == recipe_hash(two) != recipe_hash(three)


def test_who_prepares_the_data():
    shared = [facts(r, node=r // 2, local_rank=r % 2) for r in range(4)]
    roles = [preparation(distributed.World(r, r % 2, 4, r // 2, 2), shared, "t") for r in range(4)]
    assert [role.prepares for role in roles] == [True, False, False, False]
    assert [role.announces for role in roles] == [False, True, True, False]  # one waiting process per node
    local = [facts(r, node=r // 2, local_rank=r % 2, sees_cache=r < 2) for r in range(4)]
    roles = [preparation(distributed.World(r, r % 2, 4, r // 2, 2), local, "t") for r in range(4)]
    assert [role.prepares for role in roles] == [True, False, True, False]
    assert roles[3].preparer == "local rank 0 of node 1" and roles[3].announces


def test_failures_agreed_is_transparent_on_one_process():
    with pytest.raises(ValueError):
        with distributed.failures_agreed():
            raise ValueError("x")
    with distributed.failures_agreed():
        pass


@pytest.mark.multiprocess
def test_a_version_mismatch_stops_every_rank_printing_once(tmp_path, chat_rows):
    recipe = write_job_recipe(tmp_path, chat_rows)
    exits = tmp_path / "exits"
    result = launch(["run", str(recipe)], cwd=tmp_path, worker=True, monitor_interval=3, timeout=240,
                    env={"TUNE_TEST_FAKE_VERSION": "1:transformers=0.0.1", "TUNE_TEST_EXIT_FILE": str(exits)})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count("the job's processes run different software") == 1
    assert "transformers 0.0.1 on rank 1" in output
    assert sorted(exits.read_text().split("\n")[:-1]) == ["0 2", "1 2"]  # each rank exited by itself, status 2
    assert not (tmp_path / "runs").exists()  # stopped before the folder was touched


@pytest.mark.multiprocess
def test_a_wrong_world_size_is_refused_once(tmp_path, chat_rows):
    recipe = write_job_recipe(tmp_path, chat_rows, processes=3)
    result = launch(["run", str(recipe)], cwd=tmp_path, monitor_interval=3, timeout=240)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count("asks for 1 node(s) x 3 process(es) = 3, but this job was started with 2") == 1


@pytest.mark.multiprocess
@pytest.mark.parametrize("rank", [0, 1])
def test_a_peer_that_never_starts_fails_within_the_timeout(tmp_path, chat_rows, rank):
    recipe = write_job_recipe(tmp_path, chat_rows, processes=1, launch="nodes: 2, timeout_minutes: 0.1")
    started = time.monotonic()
    result = alone(["run", str(recipe)], rank=rank, world=2, port=free_port(), cwd=tmp_path, timeout=120)
    took = time.monotonic() - started
    assert result.returncode == 2
    assert result.stderr.count("did not all meet at 127.0.0.1") == 1
    assert f"rank {rank} of 2" in result.stderr and "launch.timeout_minutes (0.1 min)" in result.stderr
    assert "Traceback" not in result.stderr and "frame #" not in result.stderr
    assert took < 60  # 6 s of rendezvous plus the imports, on a loaded machine
