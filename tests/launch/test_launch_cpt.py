"""`tune launch pbs` on the continued pre-training recipes (recipes/llm-jp-4-8b/cpt.yaml and the
pre-training ones): the job asks ABCI for the recipe's rt_HF nodes, starts 8 processes on each, and
the frozen recipe still trains LLM-jp's values on the user's corpus root. No job runs here."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tune.cli import main

CPT_8B = "llm-jp-4-8b/cpt"
ROOT = "/groups/gabc/corpora/tokenized"


def launch(capsys, tmp_path, recipe: str, *extra: str, walltime: str = "12:00:00") -> tuple[Path, str]:
    run = tmp_path / "run"
    rc = main(["launch", "pbs", recipe, "--walltime", walltime, "--group", "gabc", f"data.corpus_root={ROOT}",
               f"output.dir={run}", *extra])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return run, out


def test_the_8b_cpt_job_asks_for_two_rt_hf_nodes_and_trains_llmjps_values(tmp_path, capsys):
    run, out = launch(capsys, tmp_path, CPT_8B)
    script = (run / "job" / "pbs.sh").read_text()
    for line in ("#PBS -P gabc", "#PBS -q rt_HF", "#PBS -v RTYPE=rt_HF", "#PBS -l select=2",
                 "#PBS -l walltime=12:00:00", "tune_job_timer $((43200 - 900 - SECONDS))"):
        assert line in script, line
    node = (run / "job" / "node.sh").read_text()
    assert "--nnodes 2 --nproc-per-node 8" in node
    assert "--rdzv-conf timeout=1800" in node  # launch.timeout_minutes 30
    assert f"-m tune run {run / 'job' / 'recipe.yaml'}" in node
    assert "global batch 2 x 8 x micro batch 4 x accumulation 8 = 512" in out
    frozen = yaml.safe_load((run / "job" / "recipe.yaml").read_text())
    assert frozen["method"]["name"] == "cpt" and "base" not in frozen
    train = frozen["train"]
    assert (train["max_steps"], train["lr"], train["min_lr"], train["warmup_steps"]) == (500, 3e-4, 0.0, 50)
    assert (train["scheduler"], train["decay_steps"], train["decay_style"]) == ("wsd", 250, "minus_sqrt")
    assert (train["global_batch_size"], frozen["data"]["max_seq_len"]) == (512, 4096)
    # the corpus is where the user said, whether the freeze kept the prefix relative or made it absolute
    data = frozen["data"]
    corpus = Path(data["corpus_root"] or "/") / data["corpora"][0]["prefix"]
    assert corpus == Path(ROOT) / "tokenized/v4_alpha1.0/data/openwebmath_text_document"


def test_more_nodes_keep_the_global_batch_of_512(tmp_path, capsys):
    run, out = launch(capsys, tmp_path, CPT_8B, "--nodes", "4")
    assert "#PBS -l select=4" in (run / "job" / "pbs.sh").read_text()
    assert "--nnodes 4 --nproc-per-node 8" in (run / "job" / "node.sh").read_text()
    frozen = yaml.safe_load((run / "job" / "recipe.yaml").read_text())
    assert frozen["launch"]["nodes"] == 4 and frozen["train"]["grad_accumulation"] == 4  # 4 x 8 x 4 x 4 = 512


def test_a_node_count_that_cannot_make_512_is_refused(tmp_path, capsys):
    rc = main(["launch", "pbs", CPT_8B, "--walltime", "12:00:00", "--group", "g", "--nodes", "3",
               f"output.dir={tmp_path / 'run'}"])
    _, err = capsys.readouterr()
    assert rc == 2 and "global_batch_size" in err
    assert not (tmp_path / "run" / "job").exists()


@pytest.mark.parametrize("recipe, nodes, batch", [("llm-jp-4-8b/pretrain-phase1", 64, 512),
                                                  ("llm-jp-4-32b-a3b/pretrain", 64, 1024)])
def test_the_pretraining_recipes_launch_on_64_nodes_with_their_long_rendezvous(tmp_path, capsys, recipe, nodes, batch):
    run, _ = launch(capsys, tmp_path, recipe, walltime="48:00:00")
    assert f"#PBS -l select={nodes}" in (run / "job" / "pbs.sh").read_text()
    node = (run / "job" / "node.sh").read_text()
    assert f"--nnodes {nodes} --nproc-per-node 8" in node and "--rdzv-conf timeout=7200" in node  # 120 minutes
    frozen = yaml.safe_load((run / "job" / "recipe.yaml").read_text())
    assert frozen["train"]["global_batch_size"] == batch and len(frozen["data"]["corpora"]) == 139
    # LLM-jp's train_data.sh repeats, per group; every prefix under the user's corpus root
    repeats = {Path(c["prefix"]).name: c["repeat"] for c in frozen["data"]["corpora"]}
    assert all(Path(c["prefix"]).parent == Path(ROOT) for c in frozen["data"]["corpora"])
    assert (repeats["code_stack_0000_text_document"], repeats["en_wiki_0000_text_document"],
            repeats["en_fineweb-rescored_score_19_0003_text_document"], repeats["en_fineweb-rescored_score_20_0000_text_document"],
            repeats["ja_patent_0000_text_document"], repeats["ja_cc_0004_text_document"],
            repeats["ko_fineweb2_0000_text_document"], repeats["zh_wiki_0000_text_document"]) == (8, 8, 1, 4, 8, 4, 1, 8)
    assert list(repeats.values()).count(8) == 2 + 11 + 14 + 1 + 1 and list(repeats.values()).count(4) == 25 + 11
    if "32b" in recipe:  # --moe-aux-loss-coeff 1e-2, --moe-z-loss-coeff 1e-3
        model = frozen["model"]
        assert (model["router_aux_loss_coef"], model["router_z_loss_coef"], model["output_router_logits"]) == (0.01, 0.001, True)


def test_a_cpt_job_that_would_never_evaluate_is_refused_and_eval_corpora_count_as_held_out(tmp_path, capsys):
    argv = ["launch", "pbs", CPT_8B, "--walltime", "12:00:00", "--group", "g", f"output.dir={tmp_path / 'run'}",
            "data.eval_fraction=0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cpt.yaml:" in err and "train.eval_steps" in err and "data.eval_fraction is 0 with no data.eval_corpora" in err
    assert not (tmp_path / "run" / "job").exists()
    assert main(argv + ["data.eval_corpora=[{prefix: /groups/g/ja_wiki_0000_text_document}]"]) == 0, capsys.readouterr().err
