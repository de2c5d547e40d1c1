"""Fixtures for the tokenizer and chat-template tests.

LLM-jp-4's official tokenizer assets (Apache-2.0; LICENSE and NOTICE.md beside them) are vendored
unchanged in ``tests/assets/llmjp4-tokenizer``, so the fidelity tests run on every clean clone and
never skip: a missing folder or file fails the test that needs it. ``$TUNE_LLMJP4_TOKENIZER_DIR``
points them at another copy of the same files instead (e.g. a newer release being checked).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ASSET_DIR_ENV = "TUNE_LLMJP4_TOKENIZER_DIR"
VENDORED_ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "llmjp4-tokenizer"


def llmjp4_asset_dir() -> Path:
    """The folder holding LLM-jp-4's tokenizer assets: ``$TUNE_LLMJP4_TOKENIZER_DIR`` when set,
    else the vendored ``tests/assets/llmjp4-tokenizer``.

    Raises ``FileNotFoundError`` naming the folder (and how it was chosen) when it does not exist;
    it never skips.
    """
    override = os.environ.get(ASSET_DIR_ENV)
    path = Path(override) if override else VENDORED_ASSET_DIR
    if not path.is_dir():
        how = (f"${ASSET_DIR_ENV} points at it; unset it to use the vendored copy" if override else
               "the vendored copy is missing from this checkout; restore tests/assets/llmjp4-tokenizer from git")
        raise FileNotFoundError(f"LLM-jp-4 tokenizer assets not found at {path} ({how})")
    return path


@pytest.fixture(scope="session")
def llmjp4_dir() -> Path:
    """The asset folder (fails, never skips, when it does not exist)."""
    return llmjp4_asset_dir()


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
