"""Tokenizers and chat template for LLM-jp-4 and its tiny twins: the public entry points.

* :func:`build_tiny_tokenizer` / :func:`save_tiny_tokenizer`: the tiny twins' own small
  tokenizer (LLM-jp-4's special ids, byte fallback, the Harmony template), trained by the
  project from a bundled corpus (:mod:`tune.models.tokenizer_tiny`).
* :func:`build_fast_tokenizer_from_assets`: LLM-jp-4's real tokenizer as a plain fast
  tokenizer, from its SentencePiece model or tokenizer.json, without remote code
  (:mod:`tune.models.tokenizer_sentencepiece`).
* :func:`load_template_text`: the project's Harmony chat template (``templates/harmony.jinja``),
  which renders like LLM-jp-4's official template for conversations without tool definitions.
"""

from __future__ import annotations

from tune.models.tokenizer_sentencepiece import build_fast_tokenizer_from_assets
from tune.models.tokenizer_tiny import build_tiny_tokenizer, load_template_text, save_tiny_tokenizer

__all__ = ["build_fast_tokenizer_from_assets", "build_tiny_tokenizer", "load_template_text", "save_tiny_tokenizer"]
