"""The `tune` command: verbs, exit codes, error printing, and staying light (no torch on validate)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import yaml

from tune.cli import main
from tune.errors import UserError
from tune.resources import shipped_recipe_names

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "accelerate")


def run_python(code: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv", [["--help"], ["validate", "recipes/tiny/sft-lora.yaml"], ["validate", "recipes/tiny/sft-full.yaml", "--json"]])
def test_help_and_validate_do_not_import_the_training_stack(argv):
    code = (
        "import sys, tune.cli\n"
        f"rc = tune.cli.main({argv!r})\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert rc == 0, rc\n"
        "assert not heavy, heavy\n"
        "print('LIGHT')\n"
    )
    started = time.perf_counter()
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("LIGHT")
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize("overrides", [
    ["model.name=llm-jp-4-8b", "model.path=MISSING"],  # a local checkpoint that is not there
    ["model.name=llm-jp-4-8b"],  # the preset's hub id, with HF_HUB_OFFLINE=1
    ["model.name=someone/some-model"],  # any hub id
])
def test_run_refuses_an_unreachable_checkpoint_before_importing_the_training_stack(overrides, tmp_path):
    """`tune run` locates the checkpoint first: the refusal comes before torch, TRL or peft load
    (~9 s of imports), and no run folder is left behind."""
    overrides = [o.replace("MISSING", str(tmp_path / "missing")) for o in overrides] + [f"output.dir={tmp_path / 'run'}"]
    code = (
        "import os, sys, tune.cli\n"
        "os.environ['HF_HUB_OFFLINE'] = '1'\n"
        f"rc = tune.cli.main(['run', 'tiny/sft-lora', *{overrides!r}])\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert rc == 2, rc\n"
        "assert not heavy, heavy\n"
        "print('LIGHT')\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("LIGHT")
    assert "model.path" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_python_dash_m_tune(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tune", "validate", "tiny/sft-lora"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["model"]["name"] == "tiny-llm-jp-4-8b"


def test_validate_prints_the_resolved_recipe(capsys):
    assert main(["validate", str(REPO / "recipes" / "tiny" / "sft-full.yaml"), "train.seed=9"]) == 0
    out = capsys.readouterr().out
    data = yaml.safe_load(out)
    assert data["train"]["seed"] == 9 and data["method"]["peft"] == "none" and "base" not in data


def test_validate_json_is_one_object_matching_the_yaml(capsys):
    recipe = str(REPO / "recipes" / "tiny" / "sft-lora.yaml")
    assert main(["validate", recipe, "--json", "output.dir=/tmp/x"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert main(["validate", recipe, "output.dir=/tmp/x"]) == 0
    assert as_json == yaml.safe_load(capsys.readouterr().out)
    assert as_json["data"]["datasets"][-1]["path"].endswith("tune/samples/demo-chat.jsonl")
    assert as_json["data"]["datasets"][0] | {"card": "oasst2-33k-ja", "use": "samples", "weight": 1.0} == as_json["data"]["datasets"][0]


# Every verb that takes a recipe, with its options (besides --help) in groups.
# `launch` is tested with its scheduler argument (pbs).
RECIPE_VERBS = {("run",): [], ("validate",): [["--json"]], ("plan",): [["--json"], ["--gpu", "H100"], ["--samples", "640"], ["--mfu", "0.4"]],
                ("launch", "pbs"): [["--walltime", "01:00:00"], ["--group", "g"]],
                ("data", "preview"): [["-n", "2"], ["--json"]]}


def test_the_verbs_that_take_overrides_are_the_ones_tested_here(capsys):
    from tune.cli import VERBS
    from tune.cli_data import SUBVERBS

    taking = []
    for verb in [*((name,) for name in VERBS if name != "data"), *(("data", name) for name in SUBVERBS)]:
        assert main([*verb, "--help"]) == 0
        if "KEY=VALUE" in capsys.readouterr().out:
            taking.append(verb)
    assert taking == [verb[:1] if verb[0] == "launch" else verb for verb in RECIPE_VERBS]


@pytest.mark.parametrize("verb", list(RECIPE_VERBS), ids=" ".join)
def test_overrides_go_anywhere_among_a_recipe_verbs_options(verb):
    from tune.cli import parse_verb_args

    groups = RECIPE_VERBS[verb]
    options = [arg for group in groups for arg in group]
    overrides = ["a.b=1", "c.d=2"]
    interleaved = ["tiny/sft-lora"]
    for index in range(max(len(groups), len(overrides))):
        interleaved += [*(groups[index] if index < len(groups) else []), *overrides[index:index + 1]]
    lines = [
        ["tiny/sft-lora", *overrides, *options],
        ["tiny/sft-lora", *options, *overrides],
        [*options, "tiny/sft-lora", *overrides],
        interleaved,  # tune data preview R -n 2 a.b=1 --json c.d=2
    ]
    for line in lines:
        args = parse_verb_args([*verb, *line])
        assert (args.recipe, args.overrides) == ("tiny/sft-lora", overrides), line
        assert getattr(args, "json", None) is ("--json" in options or None), line
        assert getattr(args, "n", None) == (2 if "-n" in options else None), line


def test_validate_shows_the_global_batch_of_the_topology_and_refuses_one_that_cannot_reach_it(capsys):
    assert main(["validate", "llm-jp-4-8b/sft-full-multinode"]) == 0
    plan = capsys.readouterr().err.splitlines()
    assert plan[0] == ("plan: topology: 2 node(s) x 8 process(es) = 16, launch.strategy fsdp2; global batch 2 x 8 x "
                       "micro batch 4 x accumulation 1 = 64 (train.global_batch_size)")
    assert main(["validate", "llm-jp-4-8b/sft-full-multinode", "launch.nodes=1"]) == 0  # accumulation derived again
    assert "global batch 1 x 8 x micro batch 4 x accumulation 2 = 64" in capsys.readouterr().err
    assert main(["validate", "llm-jp-4-8b/sft-full-multinode", "launch.nodes=3"]) == 2
    err = capsys.readouterr().err
    assert "`train.global_batch_size` 64 is not a whole multiple of" in err and "3 x 8 x 4 = 96" in err


def test_validate_applies_an_override_given_after_json(capsys):
    assert main(["validate", "tiny/sft-lora", "--json", "train.seed=9", "data.max_seq_len=256"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["train"]["seed"] == 9 and resolved["data"]["max_seq_len"] == 256


def test_validate_bad_recipe_exits_2_with_problem_lines_and_no_traceback(write_recipe):
    path = write_recipe("model:\n  name: tiny-llm-jp-4-8b\ndata:\n  datasets:\n    - path: tune:samples/demo-chat.jsonl\ntrain:\n  lrr: 1\n")
    result = subprocess.run([sys.executable, "-m", "tune", "validate", str(path), "train.seed=-1"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].endswith("recipe.yaml:7:3: train.lrr: unknown key; expected a key of `train` (did you mean 'lr'?)")
    assert lines[1].startswith("command-line override `train.seed=-1`: train.seed: out of range")


def test_validate_missing_file_exits_2(capsys):
    assert main(["validate", "no/such/recipe.yaml"]) == 2
    assert "no/such/recipe.yaml: no such recipe file" in capsys.readouterr().err


def test_ls_lists_every_shipped_recipe_with_its_description(capsys):
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    names = shipped_recipe_names()
    assert {"tiny/sft-lora", "tiny/sft-full", "llm-jp-4-8b/sft-lora", "llm-jp-4-8b/sft-full"} <= set(names)
    for name in names:
        description = yaml.safe_load((REPO / "recipes" / f"{name}.yaml").read_text())["description"]
        assert any(line.split()[0] == name and line.rstrip().endswith(description) for line in out.splitlines()), name


def test_cp_rewrites_relative_base_and_the_copy_validates_elsewhere(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["cp", "tiny/sft-full", "mine.yaml"]) == 0
    text = (tmp_path / "mine.yaml").read_text()
    original = (REPO / "recipes" / "tiny" / "sft-full.yaml").read_text()
    assert "base: tiny/sft-lora\n" in text
    assert text == original.replace("base: sft-lora.yaml", "base: tiny/sft-lora")  # comments kept
    capsys.readouterr()
    assert main(["validate", "mine.yaml", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["method"]["peft"] == "none" and data["train"]["lr"] == 1e-3 and data["train"]["max_steps"] == 60


def test_cp_into_a_folder_and_with_yaml_suffix(tmp_path):
    assert main(["cp", "tiny/sft-lora.yaml", str(tmp_path)]) == 0
    assert (tmp_path / "sft-lora.yaml").read_text() == (REPO / "recipes" / "tiny" / "sft-lora.yaml").read_text()


def test_cp_refuses_to_overwrite(tmp_path, capsys):
    (tmp_path / "x.yaml").write_text("keep me\n")
    assert main(["cp", "tiny/sft-lora", str(tmp_path / "x.yaml")]) == 2
    assert "already exists; not overwriting it" in capsys.readouterr().err
    assert (tmp_path / "x.yaml").read_text() == "keep me\n"


def test_cp_unknown_name_suggests(tmp_path, capsys):
    assert main(["cp", "tiny/sft-lorra", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no shipped recipe named 'tiny/sft-lorra'") and "did you mean 'tiny/sft-lora'?" in err


def test_unknown_verb_and_missing_arguments_exit_2(capsys):
    assert main(["valdate", "x.yaml"]) == 2
    assert "unknown command 'valdate'" in capsys.readouterr().err
    assert main(["validate"]) == 2
    assert "required: recipe" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["--help"]) == 0


@pytest.fixture
def fake_runner(monkeypatch):
    """Stand in for `tune.methods.run` (another room's module) and record what `tune run` hands it."""
    calls = []
    module = types.ModuleType("tune.methods.run")

    def run_recipe(loaded, break_lock=False):
        calls.append(loaded)
        module.break_lock = break_lock
        if module.raises is not None:
            raise module.raises

    module.run_recipe, module.raises, module.break_lock = run_recipe, None, None
    monkeypatch.setitem(sys.modules, "tune.methods.run", module)
    return module, calls


def test_run_validates_then_hands_the_loaded_recipe_over(fake_runner):
    module, calls = fake_runner
    assert main(["run", "tiny/sft-lora", "train.max_steps=2"]) == 0
    assert calls[0].recipe.train.max_steps == 2 and calls[0].source_path.name == "sft-lora.yaml"


def test_run_with_a_bad_recipe_never_starts(fake_runner, capsys):
    _, calls = fake_runner
    assert main(["run", "tiny/sft-lora", "train.lrr=1"]) == 2
    assert calls == [] and "did you mean 'lr'?" in capsys.readouterr().err


def test_run_prints_user_errors_and_exits_2(fake_runner, capsys):
    module, _ = fake_runner
    module.raises = UserError("output dir already holds a finished run; set output.overwrite: true")
    assert main(["run", "tiny/sft-lora"]) == 2
    assert capsys.readouterr().err == "error: output dir already holds a finished run; set output.overwrite: true\n"


def test_run_interrupted_exits_130(fake_runner, capsys):
    module, _ = fake_runner
    module.raises = KeyboardInterrupt()
    assert main(["run", "tiny/sft-lora"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_run_bug_keeps_its_traceback(fake_runner):
    module, _ = fake_runner
    module.raises = RuntimeError("a bug")
    with pytest.raises(RuntimeError):
        main(["run", "tiny/sft-lora"])


def test_run_passes_break_lock_on(fake_runner):
    module, calls = fake_runner
    assert main(["run", "tiny/sft-lora"]) == 0 and module.break_lock is False
    assert main(["run", "--break-lock", "tiny/sft-lora"]) == 0 and module.break_lock is True


REMOTE_BASE = "model:\n  name: tiny-llm-jp-4-8b\n  trust_remote_code: true\ndata:\n  datasets:\n    - path: tune:samples/demo-chat.jsonl\n"


def test_run_refuses_remote_code_the_person_did_not_allow_naming_the_base_that_asked(fake_runner, write_recipe, capsys, monkeypatch):
    monkeypatch.delenv("TUNE_TRUST_REMOTE_CODE", raising=False)
    base = write_recipe(REMOTE_BASE, "base.yaml")
    child = write_recipe("base: base.yaml\ntrain:\n  max_steps: 2\n", "child.yaml")
    _, calls = fake_runner
    assert main(["run", str(child)]) == 2
    assert calls == []
    assert capsys.readouterr().err == (
        f"{base}:3:22: model.trust_remote_code: true (inherited through `base:` by child.yaml): loading tiny-llm-jp-4-8b "
        "would run Python code from its repository on this machine, and the command line did not allow it; expected "
        "`--trust-remote-code` on the command line (or TUNE_TRUST_REMOTE_CODE=1) once you have read that code, or "
        "model.trust_remote_code: false\n")


def test_remote_code_runs_with_the_flag_or_the_environment_variable(fake_runner, write_recipe, monkeypatch):
    monkeypatch.delenv("TUNE_TRUST_REMOTE_CODE", raising=False)
    path = write_recipe(REMOTE_BASE)
    _, calls = fake_runner
    assert main(["run", str(path), "--trust-remote-code"]) == 0
    monkeypatch.setenv("TUNE_TRUST_REMOTE_CODE", "0")
    assert main(["run", str(path)]) == 2
    monkeypatch.setenv("TUNE_TRUST_REMOTE_CODE", "1")
    assert main(["run", str(path)]) == 0
    assert len(calls) == 2 and all(c.recipe.model.trust_remote_code for c in calls)
    assert main(["run", str(path), "model.trust_remote_code=false"]) == 0  # nothing to allow


def test_validate_says_remote_code_and_the_deferred_machine_checks_in_its_plan(write_recipe, capsys):
    path = write_recipe(REMOTE_BASE)
    assert main(["validate", str(path), "model.attn_implementation=flash_attention_2"]) == 0  # a CPU login node
    plan = [line for line in capsys.readouterr().err.splitlines() if line.startswith("plan: ")]
    assert plan[-2] == (f"plan: remote code: model.trust_remote_code is true (set at {path}:3:22): loading tiny-llm-jp-4-8b "
                        "runs the checkpoint repository's Python code; `tune run` needs --trust-remote-code (or TUNE_TRUST_REMOTE_CODE=1)")
    assert plan[-1] == ("plan: deferred to `tune run` on the machine that trains (not checked here): model.attn_implementation "
                        "flash_attention_2 (needs a CUDA GPU and the flash_attn package); train.precision auto (bf16 on a CUDA GPU "
                        "that supports it, else fp32)")


@pytest.mark.parametrize("verb", ["validate", "run"])
def test_a_tracker_that_is_not_installed_is_refused_before_anything_runs(verb, fake_runner, capsys, monkeypatch):
    from tune.recipe import environment_checks

    installed = {"tensorboardX"}
    monkeypatch.setattr(environment_checks.importlib.util, "find_spec", lambda name: object() if name in installed else None)
    assert main([verb, "tiny/sft-lora", "logging.report_to=[tensorboard, wandb]"]) == 2  # tensorboard through tensorboardX
    assert capsys.readouterr().err == (
        "command-line override `logging.report_to=[tensorboard, wandb]`: logging.report_to.1: the wandb package is not "
        "installed in this Python environment; expected `pip install wandb` here, or drop wandb from logging.report_to\n")
    installed.add("wandb")
    assert main([verb, "tiny/sft-lora", "logging.report_to=[tensorboard, wandb]"]) == 0


def test_output_dir_that_is_a_file_or_under_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine\n")
    assert main(["validate", "tiny/sft-lora", f"output.dir={tmp_path / 'notes.txt'}"]) == 2
    assert f"output.dir: {tmp_path / 'notes.txt'} is a file, not a folder" in capsys.readouterr().err
    assert main(["validate", "tiny/sft-lora", f"output.dir={tmp_path / 'notes.txt' / 'run'}"]) == 2
    assert f"output.dir: {tmp_path / 'notes.txt' / 'run'} lies under {tmp_path / 'notes.txt'}, which is a file" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


def test_output_dir_that_cannot_be_created_is_refused_and_nothing_is_left_behind(tmp_path, capsys):
    assert main(["validate", "tiny/sft-lora", "output.dir=/proc/tune-run/x"]) == 2  # not even root creates folders in /proc
    assert "output.dir: /proc/tune-run/x cannot be created: /proc is not writable (" in capsys.readouterr().err
    assert main(["validate", "tiny/sft-lora", f"output.dir={tmp_path / 'new' / 'run'}"]) == 0
    assert list(tmp_path.iterdir()) == []  # the check created nothing that stays


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere (the /proc case above covers it)")
def test_output_dir_in_a_read_only_folder_is_refused(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        assert main(["validate", "tiny/sft-lora", f"output.dir={locked / 'run'}"]) == 2
        assert f"cannot be created: {locked} is not writable (permission denied for this user)" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)
