"""`tune launch pbs|slurm` writes a job a person can submit: what it writes, what it refuses, and the
shell logic the job scripts share (tune.launch.job_scripts, scripts/). No job runs here; the jobs
train for real in tests/launch/test_jobs_train.py."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tune.cli import EXIT_PREEMPTED, main
from tune.errors import Preempted

REPO = Path(__file__).resolve().parents[2]
STANDINS = Path(__file__).with_name("standins")
TINY = "tiny/sft-full-multinode"


def launch(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["launch", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def standins(tmp_path, monkeypatch) -> Path:
    """A folder on PATH with the stand-ins for qsub, sbatch, module, srun, scontrol; their calls are
    recorded in the returned file."""
    bin_dir = tmp_path / "bin"
    shutil.copytree(STANDINS, bin_dir)
    for path in bin_dir.iterdir():
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    calls = tmp_path / "calls"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("TUNE_TEST_CALLS", str(calls))
    return calls


def test_pbs_job_is_written_into_the_run_folder_with_the_recipe_frozen(tmp_path, capsys):
    run = tmp_path / "run"
    rc, out, err = launch(capsys, "pbs", TINY, "--walltime", "12:00:00", "--group", "gabc", "train.lr=2e-3",
                          f"output.dir={run}")
    assert rc == 0, err
    script = run / "job" / "pbs.sh"
    assert f"job script: {script}" in out and f"submit with: qsub {script}" in out
    assert (run / "tune-run.json").is_file()  # the folder is a tune run: `tune run` writes into it
    text = script.read_text()
    for line in ("#PBS -P gabc", "#PBS -q rt_HF", "#PBS -v RTYPE=rt_HF", "#PBS -l select=2", "#PBS -l walltime=12:00:00",
                 "module load cuda/12.6/12.6.1 cudnn/9.5/9.5.1 hpcx/2.20 nccl/2.25/2.25.1-1",
                 'MASTER_ADDR=$(head -n 1 "$PBS_NODEFILE")', "tune_job_timer $((43200 - 900 - SECONDS))"):
        assert line in text, line
    node = (run / "job" / "node.sh").read_text()
    assert "--nnodes 2 --nproc-per-node 1" in node
    assert "--rdzv-conf timeout=300" in node  # launch.timeout_minutes: 5 of the tiny twin
    assert "--signals-to-handle SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1 --shutdown-timeout 900" in node
    assert f"-m tune run {run / 'job' / 'recipe.yaml'}" in node and "--trust-remote-code" not in node
    frozen = yaml.safe_load((run / "job" / "recipe.yaml").read_text())
    assert frozen["output"]["dir"] == str(run) and frozen["output"]["overwrite"] is False
    assert frozen["train"]["lr"] == 2e-3 and frozen["launch"]["strategy"] == "fsdp2"
    assert "base" not in frozen
    for name in ("pbs.sh", "node.sh", "common.sh"):
        assert "@@" not in (run / "job" / name).read_text(), name
        assert os.access(run / "job" / name, os.X_OK), name


def test_every_job_file_passes_bash_n(tmp_path, capsys):
    for scheduler in ("pbs", "slurm"):
        run = tmp_path / scheduler
        rc, _, err = launch(capsys, scheduler, TINY, "--walltime", "01:00:00", "--group", "g", f"output.dir={run}")
        assert rc == 0, err
        for path in sorted((run / "job").glob("*.sh")):
            checked = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
            assert checked.returncode == 0, (path, checked.stderr)


def test_slurm_job_asks_for_the_save_signal_before_the_time_limit(tmp_path, capsys):
    run = tmp_path / "run"
    rc, out, err = launch(capsys, "slurm", TINY, "--walltime", "02:00:00", "--save-before", "5", "--queue", "gpu",
                          "--reservation", "res1", "--group", "acct", "--max-resubmits", "1", f"output.dir={run}")
    assert rc == 0, err
    text = (run / "job" / "slurm.sh").read_text()
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --time=02:00:00",
                 "#SBATCH --signal=B:USR1@300", "#SBATCH --account=acct", "#SBATCH --partition=gpu",
                 "#SBATCH --reservation=res1", "MAX_RESUBMITS=1", 'sbatch --export="ALL,TUNE_RESUBMITS=$1"'):
        assert line in text, line
    assert "module load" not in text  # no modules by default outside ABCI
    assert f"submit with: sbatch {run / 'job' / 'slurm.sh'}" in out


def test_nodes_option_is_the_launch_nodes_override_and_the_global_batch_still_holds(tmp_path, capsys):
    assert main(["launch", "pbs", TINY, "--walltime", "01:00:00", "--group", "g", "--nodes", "1",
                 f"output.dir={tmp_path / 'one'}"]) == 0
    frozen = yaml.safe_load((tmp_path / "one" / "job" / "recipe.yaml").read_text())
    assert frozen["launch"]["nodes"] == 1 and frozen["train"]["grad_accumulation"] == 2  # 8 = 1 x 1 x 4 x 2
    assert ("topology: 1 node(s) x 1 process(es) = 1, launch.strategy fsdp2; global batch 1 x 1 x micro batch 4 x "
            "accumulation 2 = 8 (train.global_batch_size)\n") in capsys.readouterr().out
    assert "#PBS -l select=1" in (tmp_path / "one" / "job" / "pbs.sh").read_text()
    rc, _, err = launch(capsys, "pbs", TINY, "--walltime", "01:00:00", "--group", "g", "--nodes", "3",
                        f"output.dir={tmp_path / 'three'}")
    assert rc == 2 and "train.global_batch_size" in err and "3 x 1 x 4 = 12" in err
    assert not (tmp_path / "three").exists()


def test_remote_code_needs_consent_at_launch_and_is_carried_into_the_job(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TUNE_TRUST_REMOTE_CODE", raising=False)
    common = ("pbs", TINY, "--walltime", "01:00:00", "--group", "g", "model.trust_remote_code=true")
    rc, _, err = launch(capsys, *common, f"output.dir={tmp_path / 'a'}")
    assert rc == 2 and "model.trust_remote_code" in err and "--trust-remote-code" in err
    assert not (tmp_path / "a").exists()
    rc, _, err = launch(capsys, *common, "--trust-remote-code", f"output.dir={tmp_path / 'b'}")
    assert rc == 0, err
    assert (tmp_path / "b" / "job" / "recipe.yaml").read_text().count("trust_remote_code: true") == 1
    assert "--trust-remote-code" in (tmp_path / "b" / "job" / "node.sh").read_text()


@pytest.mark.parametrize("argv, expected", [
    (["--walltime", "12h", "--group", "g"], "--walltime '12h': expected a duration HH:MM:SS"),
    (["--walltime", "00:10:00", "--group", "g", "--save-before", "10"], "--save-before 10 minutes: must be more than 0 and less than the walltime"),
    (["--walltime", "01:00:00", "--group", "g", "--save-before", "0"], "--save-before 0: must be more than 0"),
    (["--walltime", "01:00:00"], "tune launch pbs needs --group GROUP"),
    (["--walltime", "01:00:00", "--group", "g", "--max-resubmits", "-1"], "--max-resubmits -1: must be 0"),
])
def test_wrong_arguments_are_refused_with_what_to_do(argv, expected, tmp_path, capsys):
    rc, _, err = launch(capsys, "pbs", TINY, *argv, f"output.dir={tmp_path / 'run'}")
    assert rc == 2 and expected in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_recipe_the_job_could_not_run_is_refused_at_its_key(tmp_path, capsys):
    rc, _, err = launch(capsys, "pbs", TINY, "--walltime", "01:00:00", "--group", "g", "--queue", "rt_HG",
                        "launch.processes_per_node=8", "train.global_batch_size=null", "launch.preempt_signals=[SIGTERM]",
                        f"output.dir={tmp_path / 'run'}")
    assert rc == 2
    assert "launch.processes_per_node: 8 processes per node, but an ABCI rt_HG node has 1 GPU(s)" in err
    assert "launch.preempt_signals: ['SIGTERM'] lacks SIGUSR1" in err
    assert not (tmp_path / "run").exists()


def test_run_folders_that_cannot_take_the_job_are_refused(tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    rc, _, err = launch(capsys, "pbs", TINY, "--walltime", "01:00:00", "--group", "g", f"output.dir={foreign}")
    assert rc == 2 and "is not a tune run folder" in err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    run = tmp_path / "run"
    assert launch(capsys, "pbs", TINY, "--walltime", "01:00:00", "--group", "g", f"output.dir={run}")[0] == 0
    before = (run / "job" / "pbs.sh").read_text()
    rc, _, err = launch(capsys, "slurm", TINY, "--walltime", "02:00:00", f"output.dir={run}")
    assert rc == 2 and f"already holds a job ({run / 'job' / 'pbs.sh'})" in err and f"qsub {run / 'job' / 'pbs.sh'}" in err
    assert (run / "job" / "pbs.sh").read_text() == before and not (run / "job" / "slurm.sh").exists()
    rc, _, err = launch(capsys, "pbs", TINY, "--walltime", "01:00:00", "--group", "g", "output.overwrite=true",
                        f"output.dir={tmp_path / 'over'}")
    assert rc == 2 and "a job never starts over" in err and not (tmp_path / "over").exists()


def test_submit_runs_qsub_and_prints_the_job_id(tmp_path, capsys, standins):
    run = tmp_path / "run"
    rc, out, err = launch(capsys, "pbs", TINY, "--walltime", "01:00:00", "--group", "g", "--submit", f"output.dir={run}")
    assert rc == 0, err
    assert "submitted: 4242.fake-pbs" in out
    assert standins.read_text().splitlines() == [f"qsub {run / 'job' / 'pbs.sh'}"]


def test_submit_without_the_scheduler_says_how_to_submit(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    run = tmp_path / "run"
    rc, _, err = launch(capsys, "slurm", TINY, "--walltime", "01:00:00", "--submit", f"output.dir={run}")
    assert rc == 2 and f"sbatch is not on PATH here; submit from a login node with: sbatch {run / 'job' / 'slurm.sh'}" in err
    assert (run / "job" / "slurm.sh").is_file()  # written: submitting by hand works


def test_preempted_exits_75_and_every_exit_status_is_recorded_for_the_job(tmp_path, capsys, monkeypatch):
    status = tmp_path / "status"
    monkeypatch.setenv("TUNE_EXIT_STATUS_DIR", str(status))
    monkeypatch.setenv("RANK", "3")

    def preempted(args):
        raise Preempted("stopped by SIGUSR1 after saving checkpoint-7", signal="SIGUSR1", step=7)

    monkeypatch.setitem(main.__globals__["VERBS"], "ls", (preempted, "list"))
    assert main(["ls"]) == EXIT_PREEMPTED == 75
    assert "preempted: stopped by SIGUSR1 after saving checkpoint-7" in capsys.readouterr().err
    assert (status / "rank-3").read_text() == "75\n"
    assert main(["validate", "no-such-recipe.yaml"]) == 2
    assert (status / "rank-3").read_text() == "2\n"

    def bug(args):
        raise RuntimeError("a bug")

    monkeypatch.setitem(main.__globals__["VERBS"], "ls", (bug, "list"))
    with pytest.raises(RuntimeError):
        main(["ls"])
    assert (status / "rank-3").read_text() == "1\n"


def outcome(tmp_path: Path, rc: int, statuses: dict[int, int]) -> str:
    folder = tmp_path / f"status-{rc}-{'-'.join(f'{k}.{v}' for k, v in statuses.items())}"
    folder.mkdir()
    for rank, status in statuses.items():
        (folder / f"rank-{rank}").write_text(f"{status}\n")
    common = REPO / "scripts" / "job-common.sh"
    done = subprocess.run(["bash", "-c", f'. "{common}"; tune_job_outcome {rc} "{folder}"'],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_job_outcome_tells_preempted_from_finished_and_failed(tmp_path):
    assert outcome(tmp_path, 0, {0: 0, 1: 0}) == "finished"
    assert outcome(tmp_path, 1, {0: 75, 1: 75}) == "preempted"  # torchrun exits 1 after forwarding a signal
    assert outcome(tmp_path, 1, {0: 75}) == "preempted"  # rank 1 ended by its launcher after rank 0 left
    assert outcome(tmp_path, 1, {0: 75, 1: 1}) == "failed"  # one rank crashed
    assert outcome(tmp_path, 1, {1: 75}) == "failed"  # rank 0 never said it saved
    assert outcome(tmp_path, 75, {}) == "failed"  # a launcher's own 75 is not tune's
    assert outcome(tmp_path, 2, {0: 2, 1: 2}) == "failed"


def test_plan_verb_takes_overrides_a_gpu_and_json_without_importing_torch():
    code = (
        "import json, sys, io, contextlib, tune.cli\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    rc = tune.cli.main(['plan', 'tiny/sft-full-multinode', '--json', 'launch.nodes=1', '--gpu', 'H100'])\n"
        "report = json.loads(out.getvalue())\n"
        "print(rc, report['gpu']['name'], report['topology']['world_size'], report['topology']['global_batch'],\n"
        "      [m for m in ('torch', 'transformers') if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "0 H100 1 8 []"  # the override and the GPU reached the plan; no torch


def test_plan_verb_refuses_an_unknown_gpu(capsys):
    assert main(["plan", "tiny/sft-full", "--gpu", "Z100"]) == 2
    err = capsys.readouterr().err
    assert "Z100" in err and "H200" in err and "Traceback" not in err  # names the GPUs it knows


def test_launch_does_not_import_torch(tmp_path):
    code = ("import sys, tune.cli\n"
            f"rc = tune.cli.main(['launch', 'slurm', '{TINY}', '--walltime', '01:00:00', 'output.dir={tmp_path / 'run'}'])\n"
            "print(rc, [m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules])\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "0 []"
