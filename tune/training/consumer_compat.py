"""Rewrite what transformers 5 saves so that every consumer of a saved model folder reads it right.

The folders tune writes (a run's ``final/``, a ``tune merge`` export) are read by more than
transformers 5: vLLM / TGI builds still pinned to transformers 4.x, llama.cpp's GGUF converters,
people's own scripts. transformers 5's ``save_pretrained`` writes for transformers 5 only:

- ``config.json`` holds ``dtype``, ``rope_parameters`` (``{rope_type, rope_theta, ...}``) and, for
  Qwen3-MoE, ``num_local_experts``. transformers 4.x reads ``torch_dtype``, ``rope_theta`` /
  ``rope_scaling`` and ``num_experts`` instead: without them it *silently* uses rope_theta 10,000
  (LLM-jp-4 uses 500,000: wrong outputs, no error) and 128 experts (a size-mismatch error on load).
  :func:`add_legacy_config_keys` writes those keys next to the new ones, equal to them;
  transformers 5 reads a config with both and gets the same values.
- ``tokenizer_config.json`` names ``tokenizer_class: TokenizersBackend``, a class 4.x does not have
  (it refuses to load the tokenizer), and records ``is_local`` / ``local_files_only``, flags of the
  load that produced the object, not properties of the folder. :func:`portable_tokenizer_config`
  names ``PreTrainedTokenizerFast`` (the class that reads ``tokenizer.json`` in 4.x; in 5.x another
  name of TokenizersBackend) and drops the flags.
- a fast tokenizer saves ``tokenizer.json`` only, while GGUF converters look for the SentencePiece
  model as ``tokenizer.model``. :func:`copy_sentencepiece_model` copies the source tokenizer's
  SentencePiece model under that name when the source had one (LLM-jp-4's is
  ``llm-jp-tokenizer_ver4.0_alpha1.0.model``; the tiny twins carry one too).

:func:`make_portable` applies the three to a folder, after ``save_pretrained``. Top-level keys only
(LLM-jp-4's configs have no sub-configs); a per-layer-type ``rope_parameters`` has no 4.x form and
is left alone. ``tests/export/test_transformers4.py`` checks the result in a real transformers 4.57.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

# The name GGUF converters (llama.cpp convert_hf_to_gguf.py) read a SentencePiece model from.
SENTENCEPIECE_FILE = "tokenizer.model"
# Keys of tokenizer_config.json that describe one load (transformers 5 writes them back), not the tokenizer.
LOAD_FLAGS = ("is_local", "local_files_only")


def add_legacy_config_keys(config: dict) -> dict:
    """``config`` (a config.json's content) plus the keys transformers 4.x reads, equal to the new ones.

    ``torch_dtype`` = ``dtype``; ``rope_theta`` = ``rope_parameters["rope_theta"]`` and, for a
    rope type other than ``default``, ``rope_scaling`` = ``rope_parameters`` without the theta;
    and each alias of the model type's ``attribute_map`` (Qwen3-MoE: ``num_experts`` for
    ``num_local_experts``). A legacy key already there is overwritten: the new key is what
    transformers 5 used. Returns a new dict.
    """
    out = dict(config)
    if out.get("dtype") is not None:
        out["torch_dtype"] = out["dtype"]
    rope = out.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" in rope:  # flat (one rope for every layer)
        out["rope_theta"] = rope["rope_theta"]
        if rope.get("rope_type", "default") != "default":
            out["rope_scaling"] = {k: v for k, v in rope.items() if k != "rope_theta"}
    for alias, name in _attribute_aliases(out.get("model_type")).items():
        if name in out:
            out[alias] = out[name]
    return out


def _attribute_aliases(model_type: str | None) -> dict[str, str]:
    """transformers' ``attribute_map`` of the config class of ``model_type`` ({} when unknown)."""
    from transformers import CONFIG_MAPPING

    if model_type is None or model_type not in CONFIG_MAPPING:
        return {}
    return dict(CONFIG_MAPPING[model_type].attribute_map)


def portable_tokenizer_config(config: dict) -> dict:
    """``config`` (a tokenizer_config.json's content) loadable by transformers 4.x and 5.x:
    ``TokenizersBackend`` renamed ``PreTrainedTokenizerFast``, the load flags dropped. Returns a new dict."""
    out = {k: v for k, v in config.items() if k not in LOAD_FLAGS}
    if out.get("tokenizer_class") == "TokenizersBackend":
        out["tokenizer_class"] = "PreTrainedTokenizerFast"
    return out


def sentencepiece_model_in(folder: Path) -> Path | None:
    """The SentencePiece model of a tokenizer folder: ``tokenizer.model``, else its only ``*.model``;
    None when it has none, or several and none named ``tokenizer.model`` (which one is meant is unknown)."""
    folder = Path(folder)
    if (folder / SENTENCEPIECE_FILE).is_file():
        return folder / SENTENCEPIECE_FILE
    found = sorted(path for path in folder.glob("*.model") if path.is_file())
    return found[0] if len(found) == 1 else None


def copy_sentencepiece_model(sources: Iterable[Path | None], folder: Path) -> Path | None:
    """Copy the SentencePiece model of the first of ``sources`` that has one (see
    :func:`sentencepiece_model_in`) to ``folder/tokenizer.model``; the file copied, or None."""
    for source in sources:
        if source is None or not Path(source).is_dir():
            continue
        model = sentencepiece_model_in(Path(source))
        if model is not None:
            target = Path(folder) / SENTENCEPIECE_FILE
            if model.resolve() != target.resolve():
                shutil.copyfile(model, target)
            return model
    return None


def _rewrite_json(path: Path, change) -> None:
    """Replace the JSON file ``path`` (when present) by ``change(its content)``, atomically."""
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        staging = path.with_name(f".{path.name}.tmp")
        staging.write_text(json.dumps(change(data), indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(staging, path)


def make_portable(folder: str | Path, sentencepiece_sources: Iterable[Path | None] = ()) -> Path | None:
    """Make the model / tokenizer folder ``folder`` load right in every consumer (module docstring):
    rewrite its ``config.json`` and ``tokenizer_config.json`` (those present) and copy the first
    SentencePiece model found in ``sentencepiece_sources`` (tokenizer folders, best first) as
    ``tokenizer.model``. Returns the SentencePiece model copied, or None."""
    folder = Path(folder)
    _rewrite_json(folder / "config.json", add_legacy_config_keys)
    _rewrite_json(folder / "tokenizer_config.json", portable_tokenizer_config)
    return copy_sentencepiece_model(sentencepiece_sources, folder)
