"""The `tune` command: verbs, exit codes, error printing, and staying light (no torch on validate)."""

from __future__ import annotations

import json
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
RECIPE_VERBS = {("run",): [], ("validate",): [["--json"]], ("data", "preview"): [["-n", "2"], ["--json"]]}


def test_the_verbs_that_take_overrides_are_the_ones_tested_here(capsys):
    from tune.cli import VERBS
    from tune.cli_data import SUBVERBS

    taking = []
    for verb in [*((name,) for name in VERBS if name != "data"), *(("data", name) for name in SUBVERBS)]:
        assert main([*verb, "--help"]) == 0
        if "KEY=VALUE" in capsys.readouterr().out:
            taking.append(verb)
    assert taking == list(RECIPE_VERBS)


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

    def run_recipe(loaded):
        calls.append(loaded)
        if module.raises is not None:
            raise module.raises

    module.run_recipe, module.raises = run_recipe, None
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
