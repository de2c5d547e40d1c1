"""Build and cache the tiny twins: random-weight checkpoints with LLM-jp-4's classes and keys.

A twin is built locally (never downloaded) from its preset: the config is the real model's with
the size keys scaled down, the weights are drawn from a fixed seed, and the tokenizer is the
project's own small Unigram tokenizer with LLM-jp-4's special ids. The result is an ordinary
Hugging Face checkpoint folder (config.json, model.safetensors, generation_config.json,
tokenizer files with the chat template, and the SentencePiece model the tokenizer was converted
from as ``tokenizer.model``, as a real checkpoint's SentencePiece tokenizer is), so everything
downstream (training, saving, exporting, loading in plain transformers) runs the same code as for
the real 8B or 32B-A3B.

Twins are cached under ``$TUNE_CACHE`` (default ``~/.cache/tune``) in a folder named by a
fingerprint of everything that shapes them; a changed preset, seed or tokenizer builds anew.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from tune.cache_dir import cache_root
from tune.models.presets import Preset

# Bump when the way twins are built changes in a way the fingerprint inputs do not show.
TWIN_FORMAT_VERSION = 2  # 2: tokenizer.model added
# Files whose content shapes the twin's tokenizer (relative to this folder).
_TOKENIZER_SOURCES = (
    "tokenizer_tiny.py",
    "tokenizer_sentencepiece.py",
    "assets/tiny_corpus.txt",
    "templates/harmony.jinja",
)


def twin_fingerprint(preset: Preset) -> str:
    """A short hash of the preset's config, seed, the tokenizer sources and the format version."""
    digest = hashlib.sha256()
    digest.update(json.dumps(preset.config, sort_keys=True).encode())
    digest.update(f"seed={preset.seed};format={TWIN_FORMAT_VERSION}".encode())
    for source in _TOKENIZER_SOURCES:
        digest.update((Path(__file__).parent / source).read_bytes())
    return digest.hexdigest()[:16]


def ensure_twin(preset: Preset) -> Path:
    """Return the folder of ``preset``'s tiny twin checkpoint, building it on first use.

    Refuses (ValueError) a preset that is not a tiny twin. The build writes into a temporary
    folder and renames it into place, so an interrupted build never leaves a half checkpoint.
    """
    if not preset.is_tiny:
        raise ValueError(f"preset {preset.name!r} is not a tiny twin; its weights come from the hub")
    target = cache_root() / "twins" / f"{preset.name}-{twin_fingerprint(preset)}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{preset.name}-", dir=target.parent))
    try:
        _build_twin(preset, staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first: keep theirs
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _build_twin(preset: Preset, directory: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    from tune.models.tokenizer_tiny import save_tiny_tokenizer, tiny_sentencepiece_model

    config_keys = dict(preset.config)
    model_type = config_keys.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_keys)
    torch.manual_seed(preset.seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=stop_token_ids(),
        pad_token_id=config.pad_token_id,
    )
    model.save_pretrained(directory)
    save_tiny_tokenizer(directory)
    (directory / "tokenizer.model").write_bytes(tiny_sentencepiece_model())


def stop_token_ids() -> list[int]:
    """Ids generation stops on for the Harmony format: `<|return|>` (2) and `<|call|>` (13)."""
    return [2, 13]
