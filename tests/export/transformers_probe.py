"""What one transformers version makes of saved model folders: run as a script by another Python
(``python transformers_probe.py CASES_JSON OUT_JSON``) or imported; imports neither tune nor pytest.

For each model folder of CASES_JSON (``{"models": {name: folder}, "tokenizers": {name: folder},
"texts": [...], "chat": [...messages], "chat_kwargs": {...}, "logits_dir": folder}``) it records the
model and tokenizer classes, the rope theta the config says and the one the rotary embedding uses,
the expert count, the special ids, the ids of each probe text, the chat template's rendering of the
probe conversation and its ids, and the generation config's end ids; the logits on the chat ids go
to ``logits_dir/<name>.pt``. Tokenizer-only folders (an adapter's ``final/``) get the tokenizer part.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def probe_tokenizer(folder: str, case: dict) -> tuple[dict, list[int]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    chat_text = tokenizer.apply_chat_template(case["chat"], tokenize=False, **case["chat_kwargs"])
    chat_ids = tokenizer(chat_text, add_special_tokens=False)["input_ids"]
    found = {
        "tokenizer_class": type(tokenizer).__name__,
        "special_ids": [tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id],
        "ids": [tokenizer(text)["input_ids"] for text in case["texts"]],
        "chat_text": chat_text,
        "chat_ids": chat_ids,
    }
    return found, chat_ids


def probe_model(name: str, folder: str, case: dict) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    found, chat_ids = probe_tokenizer(folder, case)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    config = model.config
    theta = getattr(config, "rope_theta", None)
    if theta is None:  # transformers 5 keeps it in rope_parameters only
        theta = config.rope_parameters["rope_theta"]
    inv_freq = model.model.rotary_emb.inv_freq.double()  # 1 / theta ** (2k / dim)
    dim = 2 * inv_freq.numel()
    with torch.no_grad():
        logits = model(torch.tensor([chat_ids])).logits
    torch.save(logits, Path(case["logits_dir"]) / f"{name}.pt")
    found.update(
        model_class=type(model).__name__,
        config_rope_theta=float(theta),
        used_rope_theta=float(inv_freq[1] ** (-dim / 2)),
        num_experts=getattr(config, "num_experts", None),
        generation_eos=model.generation_config.eos_token_id,
        dtype=str(next(model.parameters()).dtype),
    )
    return found


def probe(case: dict) -> dict:
    import transformers

    return {
        "transformers": transformers.__version__,
        "models": {name: probe_model(name, folder, case) for name, folder in case["models"].items()},
        "tokenizers": {name: probe_tokenizer(folder, case)[0] for name, folder in case["tokenizers"].items()},
    }


if __name__ == "__main__":
    cases_path, out_path = sys.argv[1:3]
    result = probe(json.loads(Path(cases_path).read_text(encoding="utf-8")))
    Path(out_path).write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
