"""recipes/llm-jp-4-8b/sft-full-published.yaml resolves to the values of LLM-jp's ft-llm-2026 8B SFT (docs/llmjp-published-sft.md)."""

from tune.recipe import load_recipe


def test_the_published_recipe_resolves_to_ft_llm_2026s_values(tmp_path):
    recipe = load_recipe("llm-jp-4-8b/sft-full-published", [f"output.dir={tmp_path}"]).recipe
    model, data, train, launch = recipe.model, recipe.data, recipe.train, recipe.launch
    assert (model.name, model.variant, recipe.method.name, recipe.method.peft) == ("llm-jp-4-8b", "base", "sft", "none")
    # tuning/sft_dataset.py: instruct format, chunk_stream windows of max_seq_length + 1
    assert (data.template, data.packing, data.max_seq_len) == ("instruct_ja", "concat", 4096)
    # configs/sft.yaml: the two sets once each, no dedup; dev = each dataset's first min(100, 10%) rows
    assert [(d.card, d.weight) for d in data.datasets] == [("llm-jp-4-sft-extraction-wiki-ja-v0.2", 1.0),
                                                          ("llm-jp-4-sft-extraction-wiki-ja-v0.3", 1.0)]
    assert (data.dedup, data.eval_split, data.eval_fraction, data.eval_max_rows) == (False, "per_dataset", 0.1, 100)
    # configs/model/llmjp4-8b.yaml optim + sched; configs/trainer/sft.yaml
    assert (train.lr, train.min_lr, train.scheduler, train.warmup_steps, train.min_lr_hold_steps) == (2e-5, 2e-6, "cosine", 20, 100)
    assert (train.adam_beta1, train.adam_beta2, train.weight_decay, train.max_grad_norm, train.epochs) == (0.9, 0.98, 0.1, 1.0, 2)
    # gbs 64 with mbs 4 on 2 nodes x 8 GPUs; val_check_interval = save_interval = 500
    global_batch = train.per_device_batch_size * train.grad_accumulation * launch.nodes * launch.processes_per_node
    assert (global_batch, train.per_device_batch_size, launch.nodes) == (64, 4, 2)
    assert (train.eval_steps, recipe.output.save_steps, train.precision) == (500, 500, "bf16")


def test_the_other_8b_sft_recipes_say_how_they_differ_from_it():
    for name in ("llm-jp-4-8b/sft-full", "llm-jp-4-8b/sft-lora", "llm-jp-4-8b/qlora"):
        assert "sft-full-published" in load_recipe(name).recipe.description, name
