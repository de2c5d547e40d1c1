"""The model card (README.md) of a run's model: what it was tuned from, on what, how, and the result.

Written twice per run, each time for the folder it sits in (``form``):
    - ``adapter``: a LoRA / QLoRA run's ``final/`` (tune.methods.finish), replacing peft's empty
      template: the adapter, and how to apply it with peft;
    - ``full``: a full fine-tuning run's ``final/``, and its ``tune merge`` export;
    - ``merged``: the ``tune merge`` export of an adapter run (the adapter folded into the base).

Every figure comes from the run's resolved recipe and its manifest.json, every licence from the
dataset cards (tune.data.cards); nothing is guessed. A fact tune does not know (a plain data
file's licence, the base model's licence) is said to be unknown, with what to check. The card
starts with the Hugging Face front matter (base_model, datasets, tags; ``library_name: peft`` for
an adapter) so the hub shows it. When the folder holds ``training_curve.svg`` (tune.training.curve),
the card shows it under the results.

:func:`render_card` is pure python (no torch): it renders from plain data; :func:`write_card` writes it.
"""

from __future__ import annotations

import json
from pathlib import Path

from tune.config.schema import CorpusDataSection, DatasetEntry, Recipe
from tune.models.presets import get_preset

FORMS = ("adapter", "merged", "full")
CURVE_FILE = "training_curve.svg"  # the name tune.training.curve writes

# How the card says `data.packing` after the sequence length.
PACKING_WORDS = {"none": "", "isolated": " (packed)", "concat": " (concatenated windows of max_seq_len + 1, LLM-jp's packing)"}

# What the card says about special-token names inside messages (docs/literal-control-strings.md).
LITERAL_NAMES_NOTE = (
    "**Control-token names in messages are text.** During training, a special-token name written inside a message "
    "(`<|end|>`, `<|return|>`, `<|start|>`, `<|channel|>`, ... any of ids 0-351) was encoded as ordinary text, as "
    "SentencePiece reads it; only the chat template's own markers were control tokens. `tune chat` encodes prompts "
    "the same way. The call above (`apply_chat_template` with default options), like most servers that render the "
    "template to text and then encode it, turns such a name into its control id: a message containing `<|end|>` "
    "ends its turn there. To encode as training did, use `tune.data.chat_masks.encode_chat(tokenizer, messages, "
    "{\"conversation_start_date\": ..., \"reasoning_effort\": ...})` (exact), or `apply_chat_template(..., "
    "tokenize=True, sanitize_control_tokens=True)` in recent transformers (the same control tokens, sometimes other "
    "text pieces right around a name), or keep such names out of untrusted content. No tokenizer setting does "
    "this: `split_special_tokens` would turn the template's own control tokens into text too."
)


def write_card(folder: str | Path, recipe: Recipe, manifest: dict, title: str, form: str,
               export_dtype: str | None = None) -> Path:
    """Write ``folder/README.md``, the card of the ``form`` model in ``folder`` (replacing what is
    there); the training curve is shown when ``folder/training_curve.svg`` exists. ``export_dtype``
    (``merged`` / ``full``): the dtype the weights are saved in; by default the one ``folder/config.json``
    records. Returns the path written."""
    folder = Path(folder)
    if export_dtype is None and form != "adapter" and (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        export_dtype = config.get("dtype") or config.get("torch_dtype")
    text = render_card(recipe, manifest, title=title, form=form, export_dtype=export_dtype or "its stored dtype",
                       curve=(folder / CURVE_FILE).is_file(), recipe_here=(folder / "recipe.yaml").is_file())
    path = folder / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


def render_card(recipe: Recipe, manifest: dict, title: str, form: str, export_dtype: str | None = None,
                curve: bool = False, recipe_here: bool = True) -> str:
    """The README.md text for the ``form`` model (one of ``FORMS``) of the run described by
    ``recipe`` and ``manifest``; ``curve``: show ``training_curve.svg`` (a file next to the card);
    ``recipe_here``: the resolved ``recipe.yaml`` is next to the card (else in the run folder, the
    card's parent: a run's ``final/``). ValueError for an unknown ``form``, or one that does not fit
    the recipe's ``method.peft`` (``full`` for a full run, ``adapter`` / ``merged`` for LoRA / QLoRA)."""
    if form not in FORMS:
        raise ValueError(f"model card form {form!r}: expected one of {', '.join(FORMS)}")
    if (form == "full") != (recipe.method.peft == "none"):
        raise ValueError(f"model card form {form!r} does not fit a run with method.peft {recipe.method.peft}")
    corpora = isinstance(recipe.data, CorpusDataSection)
    datasets = [] if corpora else [_dataset_row(entry) for entry in recipe.data.datasets]
    hub_ids = sorted({row["hf_id"] for row in datasets if row["hf_id"] and row["real"]})
    base_id = _base_hub_id(recipe)
    library = "peft" if form == "adapter" else "transformers"
    front = ["---", f"library_name: {library}", "pipeline_tag: text-generation"]
    if base_id:
        front.append(f"base_model: {base_id}")
    if hub_ids:
        front += ["datasets:"] + [f"- {hf_id}" for hf_id in hub_ids]
    front += ["tags:", "- llm-jp-4", "- tune", f"- {recipe.method.name}"]
    if recipe.method.peft != "none":
        front.append(f"- {recipe.method.peft}")
    front.append("---")

    lines = front + ["", f"# {title}", "", recipe.description or "", ""]
    lines += _base_section(recipe, manifest) + _method_section(recipe, export_dtype, form)
    lines += (_corpus_section(recipe, manifest) if corpora else _data_section(recipe, datasets))
    lines += _hyper_section(recipe) + _results_section(manifest, curve)
    lines += _provenance_section(manifest, recipe_here)
    lines += _text_usage_section(form) if corpora else _usage_section(recipe, form)
    return "\n".join(lines).rstrip() + "\n"


def _base_hub_id(recipe: Recipe) -> str | None:
    preset = get_preset(recipe.model.name)
    if preset is not None:
        return None if preset.is_tiny else preset.hub_id(recipe.model.variant)
    return recipe.model.name if "/" in recipe.model.name and not recipe.model.name.startswith("/") else None


def _base_section(recipe: Recipe, manifest: dict) -> list[str]:
    model = recipe.model
    preset = get_preset(model.name)
    rows = [("model", f"`{model.name}`")]
    if preset is not None and preset.is_tiny:
        rows.append(("kind", f"tiny random-weight twin of `{preset.twin_of}` ({preset.architecture}), built locally by tune"))
    elif preset is not None:
        rows += [("preset", f"`{preset.name}` ({preset.architecture})"), ("variant", model.variant or preset.default_variant),
                 ("hub id", f"`{preset.hub_id(model.variant)}`")]
    if model.path:
        rows.append(("local copy", f"`{model.path}`"))
    rows.append(("revision", model.revision or "not pinned (main at training time)"))
    folder = (manifest.get("model") or {}).get("folder")
    if folder:
        rows.append(("loaded from", f"`{folder}`"))
    lines = ["## Base model", "", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return lines + ["", "Licence: the base model's own licence applies to these weights, together with the "
                    "terms of the training data below; check both before redistributing.", ""]


def _method_section(recipe: Recipe, export_dtype: str | None, form: str) -> list[str]:
    method = recipe.method
    kind = {"none": "full fine-tuning (every weight trained)", "lora": "LoRA", "qlora": "QLoRA (LoRA on a 4-bit base)"}[method.peft]
    rows = [("method", f"{method.name}"), ("parameters", kind)]
    if method.lora is not None:
        from tune.models.adapters import resolve_lora_targets

        targets = resolve_lora_targets(recipe)
        rows += [("LoRA r / alpha / dropout", f"{method.lora.r} / {method.lora.alpha:g} / {method.lora.dropout:g}")]
        if targets is not None:
            rows.append(("LoRA targets", ", ".join(targets.modules + targets.parameters)))
            rows.append(("trainable parameters", f"{targets.trainable:,} of {targets.total:,}"))
        else:
            rows.append(("LoRA targets", str(method.lora.targets)))
    if method.qlora is not None:
        q = method.qlora
        rows.append(("4-bit base", f"{q.quant_type}, double quant {str(q.double_quant).lower()}, compute {q.compute_dtype}"))
    if method.name == "dpo":
        rows.append(("DPO beta / loss", f"{method.dpo.beta:g} / {method.dpo.loss_type}"))
    if form == "adapter":
        note = ("this folder holds the LoRA adapter only (peft, adapter_model.safetensors): apply it to the base "
                "with peft, or fold it into the base with `tune merge`")
        if method.peft == "qlora":
            note += "; it was trained on the base loaded in 4 bits"
    elif form == "merged":
        note = f"the adapter is merged into the base weights (peft merge_and_unload), saved in {export_dtype}"
        if method.peft == "qlora":
            note += "; merged onto the unquantized base, so it differs from the 4-bit training model by the base's quantization error"
    else:
        note = f"the fully fine-tuned weights, saved in {export_dtype}"
    rows.append(("export", note))
    return ["## Method", "", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows] + [""]


def _dataset_row(entry: DatasetEntry) -> dict:
    """What the card says about one dataset of the mixture."""
    weight = f"share {entry.share:g}" if entry.share is not None else f"x{entry.weight:g}" if entry.weight else "x1"
    if entry.max_rows:
        weight += f", at most {entry.max_rows} rows"
    if entry.card is None:
        return {"name": f"`{entry.path}` ({entry.format or 'messages'})", "hf_id": None, "real": True,
                "license": "not recorded (a local file: check where it came from)", "terms": "", "weight": weight}
    from tune.data.cards import CardError, load_card

    try:
        card = load_card(entry.card)
    except CardError:
        return {"name": f"card `{entry.card}`", "hf_id": None, "real": entry.use == "dataset",
                "license": "unknown (the card is not in this tune installation)", "terms": "", "weight": weight}
    source = f"`{card.hf_id}`" + (f" ({card.config or card.data_dir})" if card.config or card.data_dir else "") if card.hf_id else "not on the Hub"
    if entry.use == "samples":
        name = f"card `{card.name}`: tune's bundled sample rows only (written by tune in the schema of {source})"
    else:
        name = f"card `{card.name}`: {source}" + (f", local copy `{entry.path}`" if entry.path else "")
    terms = (card.terms or "").replace("\n", " ").replace("|", "/")
    if card.redistribution_allowed is False:
        terms = (terms + " Redistribution of the rows is not allowed.").strip()
    return {"name": name, "hf_id": card.hf_id, "real": entry.use == "dataset", "license": card.license, "terms": terms, "weight": weight}


def _data_section(recipe: Recipe, datasets: list[dict]) -> list[str]:
    data = recipe.data
    lines = ["## Training data", "", "| dataset | licence | terms | weight |", "|---|---|---|---|"]
    lines += [f"| {d['name']} | {d['license']} | {d['terms'] or '-'} | {d['weight']} |" for d in datasets]
    lines += ["", f"Rendered with the `{data.template}` template, conversation_start_date {data.conversation_start_date}, "
              f"reasoning effort {data.reasoning_effort}; loss on {data.train_on.replace('_', ' ')} turns; "
              f"eval fraction {data.eval_fraction:g} (at most {data.eval_max_rows} rows).", ""]
    return lines


def _corpus_section(recipe: Recipe, manifest: dict) -> list[str]:
    """The card's data section for a cpt run: the corpora, their blend, what was held out."""
    data = recipe.data
    lines = ["## Training data", "", "| corpus | prefix | weight |", "|---|---|---|"]
    for entry in data.corpora:
        weight = f"share {entry.share:g}" if entry.share is not None else f"tokens x {entry.repeat or 1:g}"
        lines.append(f"| {entry.name or Path(entry.prefix).name} | `{entry.prefix}` | {weight} |")
    lines += ["", f"Pre-tokenized corpora (Megatron indexed datasets), windows of {data.max_seq_len} + 1 tokens built and "
              f"blended by Megatron-Core's GPTDataset; {data.eval_fraction:g} of each corpus's documents held out for "
              "perplexity." + (f" Also evaluated on: {', '.join(f'`{e.prefix}`' for e in data.eval_corpora)}." if data.eval_corpora else ""), ""]
    perplexities = manifest.get("final_eval_perplexities") or {}
    if perplexities:
        lines += ["| held-out set | perplexity |", "|---|---|"]
        lines += [f"| {name} | {value:,.2f} |" for name, value in perplexities.items()] + [""]
    return lines


def _schedule_words(train) -> str:
    if train.scheduler != "wsd":
        return train.scheduler
    decay = f"{train.decay_steps} steps" if train.decay_steps else f"the last {train.decay_fraction:g} of the run"
    return f"wsd, {train.decay_style} decay over {decay}"


def _text_usage_section(form: str) -> list[str]:
    """How to use a continued pre-trained model: plain text continuation (it was not trained on chat)."""
    load = (["from peft import AutoPeftModelForCausalLM", "from transformers import AutoTokenizer", "",
             'tokenizer = AutoTokenizer.from_pretrained("PATH")', 'model = AutoPeftModelForCausalLM.from_pretrained("PATH")']
            if form == "adapter" else
            ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
             'tokenizer = AutoTokenizer.from_pretrained("PATH")', 'model = AutoModelForCausalLM.from_pretrained("PATH")'])
    return ["## Use", "", "```python", *load,
            'inputs = tokenizer("日本の首都は", return_tensors="pt")',
            "output = model.generate(**inputs, max_new_tokens=64)",
            "print(tokenizer.decode(output[0]))", "```", "",
            "A continued pre-training run: the model continues text; tune it with `method.name: sft` to chat.", ""]


def _hyper_section(recipe: Recipe) -> list[str]:
    train, data, launch = recipe.train, recipe.data, recipe.launch
    processes = launch.nodes * launch.processes_per_node
    global_batch = train.per_device_batch_size * train.grad_accumulation * processes
    length = f"{train.max_steps} steps" if train.max_steps else f"{train.epochs:g} epochs"
    rows = [
        ("learning rate", f"{train.lr:g} -> {train.min_lr:g} ({_schedule_words(train)}, {train.warmup_steps} warmup steps)"),
        ("length", length),
        ("batch", f"{train.per_device_batch_size} per device x {train.grad_accumulation} accumulation x {processes} "
                  f"process(es) = {global_batch} sequences per step"),
        ("max sequence length", f"{data.max_seq_len}" + PACKING_WORDS[getattr(data, "packing", "none")]),
        ("optimizer", f"{train.optimizer}, betas ({train.adam_beta1:g}, {train.adam_beta2:g}), eps {train.adam_epsilon:g}, "
                      f"weight decay {train.weight_decay:g}, clip {train.max_grad_norm:g}"),
        ("precision", train.precision),
        ("seed", str(train.seed)),
    ]
    return ["## Hyper-parameters", "", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows] + [""]


def _number(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _results_section(manifest: dict, curve: bool) -> list[str]:
    rows = [
        ("optimizer steps", _number(manifest.get("steps"))),
        ("final train loss", _number(manifest.get("final_train_loss"))),
        ("mean train loss", _number(manifest.get("mean_train_loss"))),
        ("final eval loss", _number(manifest.get("final_eval_loss"))),
        ("tokens seen", _number(manifest.get("tokens_seen"))),
        ("tokens/s", _number(manifest.get("tokens_per_s"), 1)),
        ("training time", f"{manifest['train_time_s']:g} s" if manifest.get("train_time_s") is not None else "-"),
    ]
    picture = ["![training curve](training_curve.svg)", ""] if curve else []
    return ["## Results", "", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows] + [""] + picture


def _provenance_section(manifest: dict, recipe_here: bool) -> list[str]:
    packages = manifest.get("packages") or {}
    git = manifest.get("git") or {}
    commit = git.get("commit") or "unknown (not a git checkout)"
    if git.get("dirty"):
        commit += " (with uncommitted changes)"
    versions = ", ".join(f"{k} {v}" for k, v in packages.items() if v and k != "tune")
    fingerprint = (manifest.get("data") or {}).get("fingerprint")
    lines = [f"- tune {packages.get('tune', 'unknown')}, git commit {commit}",
             f"- {versions}" if versions else "", f"- data fingerprint {fingerprint}" if fingerprint else "",
             "- the resolved recipe is `recipe.yaml` " + ("in this folder" if recipe_here else "in the run folder (this folder's parent)")
             + ": `tune run recipe.yaml` trains it again", ""]
    return ["## How it was made", ""] + [line for line in lines if line != ""] + [""]


def _usage_section(recipe: Recipe, form: str) -> list[str]:
    data = recipe.data
    if form == "adapter":
        load = ["from peft import AutoPeftModelForCausalLM", "from transformers import AutoTokenizer", "",
                'tokenizer = AutoTokenizer.from_pretrained("PATH")',
                'model = AutoPeftModelForCausalLM.from_pretrained("PATH")  # the base named in adapter_config.json, plus this adapter']
        # the base's generation config may not stop at <|call|>: name both end tokens
        generate = ('output = model.generate(**inputs, max_new_tokens=256, '
                    'eos_token_id=tokenizer.convert_tokens_to_ids(["<|return|>", "<|call|>"]))')
        chat_path = "RUN_DIR"  # the run folder: this folder's parent
    else:
        load = ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                'tokenizer = AutoTokenizer.from_pretrained("PATH")',
                'model = AutoModelForCausalLM.from_pretrained("PATH")']
        generate = "output = model.generate(**inputs, max_new_tokens=256)  # stops at <|return|> / <|call|> (generation_config.json)"
        chat_path = "PATH"
    return [
        "## Use", "", "```python",
        *load,
        'messages = [{"role": "user", "content": "日本の首都は？"}]',
        "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\", return_dict=True,",
        f'                                       conversation_start_date="{data.conversation_start_date}", reasoning_effort="{data.reasoning_effort}")',
        generate,
        "print(tokenizer.decode(output[0, inputs[\"input_ids\"].shape[1]:]))",
        "```", "",
        "The reply is in LLM-jp-4's Harmony format: an optional `analysis` message (thinking), then the "
        f"`final` message. `tune chat {chat_path}` prints only the final answer.",
        "", LITERAL_NAMES_NOTE,
    ]
