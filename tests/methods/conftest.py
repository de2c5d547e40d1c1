import json

import pytest

OVERFIT_ROWS = [
    {"messages": [{"role": "user", "content": "日本の首都は？"}, {"role": "assistant", "content": "東京です。"}]},
    {"messages": [{"role": "user", "content": "What is 2+3?"}, {"role": "assistant", "content": "2+3 is 5."}]},
    {"messages": [{"role": "system", "content": "Be short."}, {"role": "user", "content": "Say hi"},
                  {"role": "assistant", "content": "Hi!"}]},
]


@pytest.fixture
def overfit_recipe(tmp_path):
    """Write a small repeated-conversation recipe; returns (recipe_path, overrides maker)."""
    data = tmp_path / "overfit.jsonl"
    data.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in OVERFIT_ROWS))

    def write(model: str, peft: str, lr: float, steps: int, **extra) -> str:
        recipe = tmp_path / f"{model}-{peft}.yaml"
        lines = [
            f"model: {{name: {model}}}",
            f"method: {{name: sft, peft: {peft}}}" if peft == "none"
            else f"method: {{name: sft, peft: {peft}, lora: {{r: 16, alpha: 32, dropout: 0.0}}}}",
            f"data: {{datasets: [{{path: overfit.jsonl, weight: 4}}], max_seq_len: 256}}",
            f"train: {{max_steps: {steps}, lr: {lr}, min_lr: 0, warmup_steps: 2, per_device_batch_size: 4, "
            f"weight_decay: 0.0, precision: fp32}}",
            f"output: {{dir: {tmp_path / 'run'}}}",
            "logging: {logging_steps: 1}",
        ]
        recipe.write_text("\n".join(lines) + "\n")
        return str(recipe)

    return write
