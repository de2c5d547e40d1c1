"""Finished tiny runs to export and chat with: a few LoRA SFT steps on each twin, one full SFT run.

Trained once per test session (a few seconds each). The LoRA runs pin a non-default
conversation date and reasoning effort, so tests can see that chat uses the recipe's values.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TWINS = ("tiny-llm-jp-4-8b", "tiny-llm-jp-4-32b-a3b")
PINNED_DATE, PINNED_EFFORT = "2025-01-15", "high"


def train(folder: Path, recipe: str, *overrides: str) -> Path:
    from tune.recipe import load_recipe
    from tune.methods.run import run_recipe

    loaded = load_recipe(recipe, [
        "train.max_steps=3", "train.warmup_steps=1", "train.precision=fp32", "data.max_seq_len=256",
        "logging.logging_steps=1", f"output.dir={folder}", *overrides,
    ])
    run_recipe(loaded)
    return folder


@pytest.fixture(scope="session")
def lora_runs(tmp_path_factory) -> dict[str, Path]:
    """{twin name: folder of a finished 3-step LoRA SFT run of tiny/sft-lora on it}."""
    root = tmp_path_factory.mktemp("runs")
    return {
        name: train(root / name, "tiny/sft-lora", f"model.name={name}",
                    f"data.conversation_start_date={PINNED_DATE}", f"data.reasoning_effort={PINNED_EFFORT}")
        for name in TWINS
    }


@pytest.fixture(scope="session")
def full_run(tmp_path_factory) -> Path:
    """A finished 3-step full fine-tuning run of tiny/sft-full (dense twin)."""
    return train(tmp_path_factory.mktemp("runs") / "full", "tiny/sft-full")


@pytest.fixture(scope="session")
def qlora_run(tmp_path_factory) -> Path:
    """A finished 3-step QLoRA run of tiny/qlora (dense twin, nf4 base)."""
    return train(tmp_path_factory.mktemp("runs") / "qlora", "tiny/qlora")


@pytest.fixture(scope="session")
def merged(lora_runs, tmp_path_factory) -> dict[str, Path]:
    """{twin name: folder `tune merge` wrote for its LoRA run}."""
    from tune.export.merge import merge_run

    root = tmp_path_factory.mktemp("merged")
    return {name: merge_run(run, root / name, printer=lambda *_: None).out for name, run in lora_runs.items()}
