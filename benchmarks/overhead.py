"""tune's overhead: the demo job through `tune run` vs. a plain TRL script, side by side.

Both train the same tiny twin on the same tokenized samples with the same hyper-parameters and
seed, each in its own process, alternating, `--repeats` times. Prints tokens/s of each (best run),
their ratio (target >= 0.98) and the largest difference between their logged losses (target 0).

    python benchmarks/overhead.py [--recipe recipes/tiny/sft-lora.yaml] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def prepare(recipe_path: str, work: Path):
    """Resolve the recipe and write its tokenized samples for the baseline."""
    from tune.recipe import load_recipe
    from tune.data.pipeline import prepare_data
    from tune.models.checkpoints import locate_checkpoint
    from tune.models.loading import load_tokenizer

    recipe = load_recipe(recipe_path).recipe
    checkpoint = locate_checkpoint(recipe.model)
    data = prepare_data(recipe, load_tokenizer(recipe, checkpoint))
    rows = work / "prepared.jsonl"
    with open(rows, "w") as handle:
        for ids, labels in zip(data.train["input_ids"], data.train["labels"]):
            handle.write(json.dumps({"input_ids": ids, "labels": labels}) + "\n")
    t, lora = recipe.train, recipe.method.lora
    hparams = {
        "max_steps": t.max_steps, "lr": t.lr, "min_lr": t.min_lr, "warmup_steps": t.warmup_steps,
        "batch": t.per_device_batch_size, "accumulation": t.grad_accumulation, "beta1": t.adam_beta1,
        "beta2": t.adam_beta2, "weight_decay": t.weight_decay, "clip": t.max_grad_norm, "seed": t.seed,
        "max_len": recipe.data.max_seq_len, "logging_steps": recipe.logging.logging_steps,
        "r": lora.r, "alpha": lora.alpha, "dropout": lora.dropout,
    }
    if recipe.train.scheduler != "cosine" or lora.targets != "all-linear" or recipe.train.max_steps is None:
        sys.exit("overhead.py compares LoRA recipes with a cosine schedule, all-linear targets and max_steps")
    return checkpoint.folder, rows, hparams


def run_tune(recipe_path: str, out: Path) -> dict:
    subprocess.run([sys.executable, "-m", "tune", "run", recipe_path, f"output.dir={out}", "train.precision=fp32"],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    manifest = json.loads((out / "manifest.json").read_text())
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"tokens_per_s": manifest["tokens_per_s"], "losses": losses}


def run_plain(model: Path, rows: Path, hparams: dict, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "plain_trl_sft.py"), "--model", str(model), "--data", str(rows),
         "--hparams", json.dumps(hparams), "--out", str(out)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "tiny" / "sft-lora.yaml"))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model, rows, hparams = prepare(args.recipe, work)
        tune_runs, plain_runs = [], []
        for i in range(args.repeats):
            tune_runs.append(run_tune(args.recipe, work / f"tune-{i}"))
            plain_runs.append(run_plain(model, rows, hparams, work / f"plain-{i}"))
    best_tune = max(r["tokens_per_s"] for r in tune_runs)
    best_plain = max(r["tokens_per_s"] for r in plain_runs)
    a, b = tune_runs[0]["losses"], plain_runs[0]["losses"]
    loss_diff = max(abs(x - y) for x, y in zip(a, b)) if len(a) == len(b) else float("inf")
    print(f"{'':<22}{'tune run':>12}{'plain TRL':>12}")
    print(f"{'tokens/s (best of ' + str(args.repeats) + ')':<22}{best_tune:>12,.0f}{best_plain:>12,.0f}")
    for i, (t, p) in enumerate(zip(tune_runs, plain_runs), start=1):
        print(f"{'tokens/s, run ' + str(i):<22}{t['tokens_per_s']:>12,.0f}{p['tokens_per_s']:>12,.0f}")
    print(f"ratio tune / plain: {best_tune / best_plain:.3f}   (target >= 0.98)")
    print(f"logged losses: {len(a)} vs {len(b)}; largest difference {loss_diff:.2e}   (target 0)")


if __name__ == "__main__":
    main()
