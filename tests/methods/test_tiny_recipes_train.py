"""Every shipped tiny recipe trains as shipped (a few steps): the recipes a user copies first must run.

The recipes keep their own model, method, data and hyper-parameters; only the step count, the
logging interval and the output folder are overridden, so the whole path (data cards, template,
masks, LoRA/QLoRA/DPO, MoE aux loss) runs as a user would run it.
"""

import json
import math
from pathlib import Path

import pytest

from tune.recipe import load_recipe
from tune.methods.run import run_recipe

REPO = Path(__file__).resolve().parents[2]
# The multi-node twins need 2 processes: tests/launch/test_jobs_train.py trains them as 2 nodes.
MULTINODE = {"sft-full-multinode.yaml", "moe-sft-full-multinode.yaml"}
# The continued pre-training twins train as shipped, whole, in tests/methods/test_cpt.py.
CPT = {"cpt.yaml", "moe-pretrain.yaml"}
TINY = sorted(p.name for p in (REPO / "recipes" / "tiny").glob("*.yaml") if p.name not in MULTINODE | CPT)
STEPS = 3


def test_the_tiny_recipes_cover_every_method():
    expected = {"sft-lora.yaml", "sft-full.yaml", "qlora.yaml", "dpo.yaml", "dpo-lora.yaml",
                "moe-lora.yaml", "moe-sft-full.yaml", "moe-qlora.yaml", "moe-dpo.yaml"}
    assert expected <= set(TINY), TINY


@pytest.mark.slow
@pytest.mark.parametrize("name", TINY)
def test_tiny_recipe_trains_as_shipped(name, tmp_path):
    loaded = load_recipe(REPO / "recipes" / "tiny" / name,
                         [f"train.max_steps={STEPS}", "logging.logging_steps=1", f"output.dir={tmp_path / 'run'}"])
    run_recipe(loaded)
    run_dir = tmp_path / "run"
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    assert all(math.isfinite(r["loss"]) for r in records)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["steps"] == STEPS and manifest["method"] == loaded.recipe.method.name
    if loaded.recipe.model.output_router_logits:
        assert all(math.isfinite(r["aux_loss"]) for r in records)
    final = run_dir / "final"
    assert (final / ("adapter_config.json" if loaded.recipe.method.peft != "none" else "config.json")).exists()
