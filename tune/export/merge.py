"""`tune merge RUN_DIR --out DIR`: a finished run as one standalone transformers checkpoint.

What DIR receives:
    - the weights as safetensors: a LoRA (or QLoRA) adapter folded into its base with peft's
      ``merge_and_unload``, or a full fine-tuning run's ``final/`` model re-saved as it is (nothing
      to fold). Qwen3-MoE experts, fused in memory, are written in the hub's per-expert layout
      (``mlp.experts.{i}.gate_proj.weight`` ...) by transformers' own save conversion;
    - the tokenizer (tokenizer.json, tokenizer_config.json, chat_template.jinja): the run's own,
      with the run's template (tune's ``instruct_ja`` template replaces the chat template when
      the run trained on it, so users of DIR prompt the way the model was trained); plus the
      SentencePiece model as ``tokenizer.model`` when the run's tokenizer source had one
      (``final/``, else ``model.tokenizer``, else the base checkpoint folder);
    - generation_config.json: the base's, with bos / pad from the tokenizer and ``eos_token_id``
      = ``<|return|>`` and ``<|call|>`` (2 and 13; see tune.export.harmony for why ``<|end|>``,
      11, is not among them);
    - README.md (the model card, tune.training.model_card) and recipe.yaml (the resolved recipe);
      ``final/training_curve.svg``, when the run has one, shown in the card.
DIR loads with plain ``AutoModelForCausalLM.from_pretrained(DIR)``: no tune, no peft, in
transformers 5 and 4.x alike: config.json and tokenizer_config.json are rewritten after saving
(tune.training.consumer_compat: the legacy ``rope_theta`` / ``torch_dtype`` / ``num_experts`` keys,
``tokenizer_class: PreTrainedTokenizerFast``, no load flags).

Dtype (``--dtype``, default ``auto``): the recipe's ``model.dtype`` when it names one, else the
dtype the base checkpoint is stored in (bfloat16 for the released LLM-jp-4 weights, float32 for
the tiny twins). The merge runs in that dtype. A QLoRA adapter is merged onto the *unquantized*
base in that dtype (never onto 4-bit weights, which cannot hold the sum): the result differs from
the 4-bit model that trained by the base's quantization error, which is the usual QLoRA export.

The work happens in a hidden folder next to DIR, renamed to DIR when complete, so a failure
never leaves a half-written model behind.

Refuses (UserError): RUN_DIR not a finished run (tune.export.run_folder), DIR existing and not
empty, a base checkpoint that cannot be found (``--base DIR`` points at a local copy).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tune.errors import UserError
from tune.export.run_folder import FinishedRun, locate_base, read_run, saved_dtype

DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class MergeResult:
    out: Path
    merged: bool  # an adapter was folded in (False: a full model re-saved)
    dtype: str
    base: Path | None


def export_dtype(run: FinishedRun, base: Path | None, requested: str = "auto") -> str:
    """The dtype name the export is written in (see the module docstring)."""
    if requested not in DTYPES:
        raise UserError(f"--dtype {requested}: expected one of {', '.join(DTYPES)}")
    if requested != "auto":
        return requested
    if run.recipe.model.dtype != "auto":
        return run.recipe.model.dtype
    return saved_dtype(base if run.is_adapter and base else run.final) or "float32"


def check_out_dir(out: Path) -> None:
    """Refuse an ``out`` that exists and is not an empty folder."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} already exists and is not empty; choose a new folder (or remove it)")


def load_tuned(run: FinishedRun, base: Path | None, dtype: str, merge: bool):
    """The run's model in ``dtype``: the base with the adapter applied (merged into the weights
    when ``merge``; a PeftModel otherwise), or the full model of ``final/``."""
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = getattr(torch, dtype)
    if not run.is_adapter:
        return AutoModelForCausalLM.from_pretrained(run.final, dtype=torch_dtype)
    from peft import PeftModel

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype)
    model = PeftModel.from_pretrained(model, run.final)
    return model.merge_and_unload() if merge else model.eval()


def load_run_tokenizer(run: FinishedRun):
    """The run's tokenizer from ``final/``, carrying the chat template the run trained with."""
    from transformers import AutoTokenizer

    from tune.data.render import template_text

    tokenizer = AutoTokenizer.from_pretrained(run.final)
    template = template_text(getattr(run.recipe.data, "template", "chat"))  # cpt: the tokenizer's own (chat)
    if template is not None:
        tokenizer.chat_template = template
    return tokenizer


def generation_config_for(tokenizer, source: Path | None):
    """``source``'s generation config (a fresh one when it has none) with LLM-jp-4's special ids."""
    from transformers import GenerationConfig

    from tune.export.harmony import eos_token_ids

    try:
        config = GenerationConfig.from_pretrained(source) if source else GenerationConfig()
    except OSError:
        config = GenerationConfig()
    config.bos_token_id = tokenizer.bos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    config.eos_token_id = eos_token_ids(tokenizer)
    return config


def sentencepiece_sources(run: FinishedRun, base: Path | None) -> list[Path]:
    """Folders that may hold the SentencePiece model of the run's tokenizer, best first: ``final/``,
    the recipe's ``model.tokenizer``, the base checkpoint (``base``, else the folder the manifest
    says training loaded)."""
    loaded = (run.manifest.get("model") or {}).get("folder")
    folders = [run.final, run.recipe.model.tokenizer, base, loaded]
    return [Path(folder) for folder in folders if folder]


def merge_run(run_dir: str | Path, out: str | Path, base: str | None = None, dtype: str = "auto", printer=print) -> MergeResult:
    """Export the finished run in ``run_dir`` into ``out`` (see the module docstring)."""
    out = Path(out)
    run = read_run(run_dir)
    check_out_dir(out)
    base_folder = locate_base(run, base) if run.is_adapter else None
    name = export_dtype(run, base_folder, dtype)
    from tune.training.quiet import quiet_library_chatter

    quiet_library_chatter()
    from tune.training.consumer_compat import make_portable
    from tune.training.model_card import CURVE_FILE, write_card

    if run.is_adapter:
        printer(f"merging the {run.recipe.method.peft} adapter of {run.folder} into {base_folder} ({name})")
    else:
        printer(f"exporting the fully fine-tuned model of {run.folder} ({name}): nothing to merge")
    model = load_tuned(run, base_folder, name, merge=True)
    tokenizer = load_run_tokenizer(run)
    model.generation_config = generation_config_for(tokenizer, base_folder or run.final)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        sentencepiece = make_portable(staging, sentencepiece_sources(run, base_folder))
        shutil.copyfile(run.folder / "recipe.yaml", staging / "recipe.yaml")
        if (run.final / CURVE_FILE).is_file():
            shutil.copyfile(run.final / CURVE_FILE, staging / CURVE_FILE)
        write_card(staging, run.recipe, run.manifest, title=out.name, form="merged" if run.is_adapter else "full",
                   export_dtype=name)
        if out.exists():
            out.rmdir()  # empty (checked above)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if sentencepiece is not None:
        printer(f"included the SentencePiece model {sentencepiece} as tokenizer.model")
    printer(f"saved a standalone model to {out} (load it with AutoModelForCausalLM.from_pretrained)")
    return MergeResult(out, run.is_adapter, name, base_folder)
