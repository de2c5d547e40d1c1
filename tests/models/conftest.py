"""Fixtures for the tokenizer and chat-template tests.

LLM-jp-4's real tokenizer assets are never copied into the repository: the tests read them
from ``../shared/llmjp4-tokenizer`` next to the repository, or from the folder named by
``$TUNE_LLMJP4_TOKENIZER_DIR``, and skip only when that folder does not exist.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ASSET_DIR_ENV = "TUNE_LLMJP4_TOKENIZER_DIR"


def llmjp4_asset_dir() -> Path:
    """Where LLM-jp-4's tokenizer assets are expected (the folder may be absent)."""
    override = os.environ.get(ASSET_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "llmjp4-tokenizer"


@pytest.fixture(scope="session")
def llmjp4_dir() -> Path:
    """The asset folder; skips the test when it does not exist."""
    path = llmjp4_asset_dir()
    if not path.is_dir():
        pytest.skip(f"LLM-jp-4 tokenizer assets not found at {path} (set {ASSET_DIR_ENV})")
    return path


@pytest.fixture(scope="session")
def llmjp4_model_file(llmjp4_dir: Path) -> Path:
    """The SentencePiece model in the asset folder (fails, not skips, when the folder lacks it)."""
    models = sorted(llmjp4_dir.glob("*.model"))
    assert len(models) == 1, f"expected one SentencePiece *.model in {llmjp4_dir}, found {models}"
    return models[0]


@pytest.fixture(scope="session")
def llmjp4_sp(llmjp4_model_file: Path):
    """``sentencepiece.SentencePieceProcessor`` on LLM-jp-4's model: the reference encoder."""
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(llmjp4_model_file))


@pytest.fixture(scope="session")
def llmjp4_tokenizer(llmjp4_dir: Path):
    """LLM-jp-4's fast tokenizer built by tune from the SentencePiece model (built once)."""
    from tune.models.tokenizer_sentencepiece import build_fast_tokenizer_from_assets

    return build_fast_tokenizer_from_assets(llmjp4_dir)


@pytest.fixture(scope="session")
def official_template(llmjp4_dir: Path) -> str:
    """LLM-jp-4's official chat_template.jinja (fails when the asset folder lacks it)."""
    return (llmjp4_dir / "chat_template.jinja").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """The tiny twins' tokenizer (trained once per test session)."""
    from tune.models.tokenizer_tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()
