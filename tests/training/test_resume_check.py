"""Resume only what continues exactly: the keys that may change, as the schema declares them, and the verdicts."""

from pathlib import Path
from typing import get_args

import pytest

from tune.config.schema import Recipe
from tune.training.resume_check import FIXED, FREE, LENGTH, TOPOLOGY, changes, rule_of, verdict


def declared(model=Recipe, prefix="") -> dict[str, str]:
    """Every field of the schema that declares a resume rule, by dotted key."""
    from pydantic import BaseModel

    found = {}
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if "on_resume" in extra:
            found[key] = extra["on_resume"]
        candidates = [field.annotation]
        while candidates:  # through Optional, lists and unions (the data sections)
            annotation = candidates.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                found.update(declared(annotation, f"{key}."))
            else:
                candidates.extend(get_args(annotation))
    return found


def test_the_keys_that_may_change_on_resume_are_these_and_no_others():
    assert declared() == {
        "description": FREE,
        "data.cache": FREE, "data.num_proc": FREE,
        "data.corpora.name": FREE, "data.corpus_root": FREE, "data.eval_samples": FREE, "data.eval_corpora": FREE,
        "data.eval_corpora.name": FREE,
        "launch.timeout_minutes": FREE, "launch.preempt_signals": FREE,
        "launch.nodes": TOPOLOGY, "launch.processes_per_node": TOPOLOGY, "train.grad_accumulation": TOPOLOGY,
        "train.epochs": LENGTH, "train.max_steps": LENGTH, "train.resume": FREE,
        "output.dir": FREE, "output.save_steps": FREE, "output.save_total_limit": FREE, "output.overwrite": FREE,
        "logging.report_to": FREE, "logging.logging_steps": FREE,
    }


def recipe(**sections) -> dict:
    tree = {"model": {"name": "tiny-llm-jp-4-8b"}, "method": {"name": "sft", "peft": "lora", "lora": {"r": 8}},
            "data": {"datasets": [{"path": "/d/a.jsonl"}], "max_seq_len": 1024},
            "train": {"seed": 42, "lr": 1e-4, "scheduler": "cosine", "max_steps": 12},
            "output": {"dir": "/runs/a", "save_steps": 4}, "logging": {"logging_steps": 10}}
    for section, values in sections.items():
        tree[section] = {**tree.get(section, {}), **values}
    return tree


def test_seed_lr_length_and_model_changes_are_refused_each_named():
    old = recipe()
    new = recipe(model={"name": "tiny-llm-jp-4-32b-a3b"}, train={"seed": 7, "lr": 2e-4}, data={"max_seq_len": 512})
    result = verdict(old, new, checkpoint_step=4)
    assert not result.continues and result.allowed == []
    assert [change.describe() for change, _ in result.refused] == [
        "model.name: 'tiny-llm-jp-4-8b' -> 'tiny-llm-jp-4-32b-a3b'", "data.max_seq_len: 1024 -> 512",
        "train.seed: 42 -> 7", "train.lr: 0.0001 -> 0.0002"]


def test_logging_saving_the_folder_and_overwrite_may_change():
    new = recipe(output={"dir": "/moved/a", "save_steps": 2, "overwrite": True}, logging={"logging_steps": 1},
                 data={"num_proc": 4})
    result = verdict(recipe(), new, checkpoint_step=4)
    assert result.continues
    assert sorted(c.key for c in result.allowed) == ["data.num_proc", "logging.logging_steps", "output.dir",
                                                     "output.overwrite", "output.save_steps"]


@pytest.mark.parametrize("scheduler, steps, checkpoint, allowed", [
    ("constant", 20, 4, True),    # every past and next lr the same
    ("constant", 6, 4, True),     # shorter, still after the checkpoint
    ("constant", 3, 4, False),    # the checkpoint is past the new end
    ("cosine", 20, 4, False),     # the lr of every step depends on the total
    ("linear", 20, 4, False),
])
def test_a_new_length_only_where_no_learning_rate_depends_on_it(scheduler, steps, checkpoint, allowed):
    old = recipe(train={"scheduler": scheduler})
    result = verdict(old, recipe(train={"scheduler": scheduler, "max_steps": steps}), checkpoint)
    assert result.continues is allowed
    if not allowed:
        (change, why), = result.refused
        assert change.key == "train.max_steps" and ("past the new end" in why or "depends on the run's total" in why)


def test_absent_and_null_are_the_same_and_a_longer_dataset_list_differs():
    old = recipe(method={"dpo": None})  # a record of an older tune: another method's null section
    assert changes(old, recipe()) == []
    longer = recipe(data={"datasets": [{"path": "/d/a.jsonl"}, {"path": "/d/b.jsonl"}]})
    assert [c.describe() for c in changes(recipe(), longer)] == [
        "data.datasets.1.path: (unset) -> '/d/b.jsonl'", "data.datasets: 1 item(s) -> 2 item(s)"]


def test_rules_follow_the_method_section_and_unknown_keys_are_fixed():
    new = recipe()
    assert rule_of("method.lora.r", new) == FIXED
    assert rule_of("data.datasets.0.weight", new) == FIXED
    assert rule_of("logging.report_to", new) == FREE
    assert rule_of("train.no_such_key", new) == FIXED


def test_a_refused_resume_names_file_line_and_key(write_recipe, tmp_path):
    from tune.config.problems import RecipeError
    from tune.recipe import load_recipe
    from tune.training.resume_check import refusal_problems

    path = write_recipe("""\
        model:
          name: tiny-llm-jp-4-8b
        data:
          datasets:
            - path: tune:samples/demo-chat.jsonl
        train:
          seed: 7
        """)
    loaded = load_recipe(path, ["train.lr=3e-4", f"output.dir={tmp_path / 'run'}"])
    old = loaded.recorded().to_dict()
    old["train"].update(seed=42, lr=1e-4)
    result = verdict(old, loaded.recorded().to_dict(), checkpoint_step=4)
    lines = RecipeError(refusal_problems(result, tmp_path / "run", "checkpoint-4", loaded.positions, path)).lines()
    assert lines[0].startswith(f"{path}:7:9: train.seed: 7 here, 42 in the interrupted run in {tmp_path / 'run'} "
                               "(checkpoint-4): it cannot change when the run resumes")
    assert lines[1].startswith("command-line override `train.lr=3e-4`: train.lr: 0.0003 here, 0.0001 in")
    assert f"`tune run {tmp_path / 'run' / 'recipe.yaml'}` continues it as it was" in lines[2]
    assert "output.overwrite=true to start over" in lines[2]


def cpt(**sections) -> dict:
    tree = {"model": {"name": "tiny-llm-jp-4-8b"}, "method": {"name": "cpt"},
            "data": {"corpora": [{"prefix": "/c/ja"}], "max_seq_len": 256},
            "train": {"seed": 42, "scheduler": "wsd", "decay_steps": 2, "max_steps": 12, "per_device_batch_size": 2,
                      "grad_accumulation": 2},
            "launch": {"nodes": 1, "processes_per_node": 1, "strategy": "ddp"}}
    for section, values in sections.items():
        tree[section] = {**tree.get(section, {}), **values}
    return tree


def test_a_cpt_run_on_ddp_may_resume_on_another_process_count_at_the_same_global_batch():
    two = cpt(launch={"processes_per_node": 2}, train={"grad_accumulation": 1})
    result = verdict(cpt(), two, checkpoint_step=4)
    assert result.continues and {c.key for c in result.allowed} == {"launch.processes_per_node", "train.grad_accumulation"}
    assert rule_of("data.corpus_root", cpt()) == FREE and rule_of("data.max_seq_len", cpt()) == FIXED


@pytest.mark.parametrize("old, new, why", [
    (cpt(), cpt(launch={"processes_per_node": 2}), "the global batch would change (4 -> 8 sequences per step)"),
    (cpt(launch={"strategy": "fsdp2"}), cpt(launch={"strategy": "fsdp2", "processes_per_node": 2}, train={"grad_accumulation": 1}),
     "a `launch.strategy: fsdp2` checkpoint is resumed on the topology it was saved on"),
    (recipe(train={"grad_accumulation": 2}), recipe(train={"grad_accumulation": 1}, launch={"processes_per_node": 2}),
     "only method cpt reads its data in one order"),
])
def test_other_topology_changes_are_refused_with_the_reason(old, new, why):
    result = verdict(old, new, checkpoint_step=4)
    assert not result.continues and all(why in reason for _, reason in result.refused), result.refused
