"""How long a text can be and still fit in N tokens: the bound that drops a far-too-long sample untokenized.

``max_chars_per_token(tokenizer)`` is B, the most characters of text one token can stand for, read
from the tokenizer's definition (``tokenizer.json``): the longest vocabulary piece, scaled by the most
the normalizer can shrink a text, or the longest added token if longer (LLM-jp-4: 16). Any text of
more than ``N x B`` characters then has more than N tokens, whatever its content, so a sample whose
rendered text is longer cannot fit in `data.max_seq_len`; tune.data.sample_builder drops it before
tokenizing (a 10 MB row: ~17 s and ~1.7 GB in the tokenizer), counted as over-long like the others.

None (no bound: every sample is tokenized, as before) where the definition allows one token to
stand for a run of any length: a normalizer that can delete or fold text without limit, a
pre-tokenizer that removes characters, an unknown token fused over a run (no byte fallback) or
covering a whole word (WordPiece, WordLevel), an added token that swallows whitespace
(``lstrip`` / ``rstrip``), a tokenizer that truncates. Why the bound holds, and each case:
docs/data-intake.md
"""

from __future__ import annotations

import json
import math
from weakref import WeakKeyDictionary

_SAFE_PRE_TOKENIZERS = {"Metaspace", "ByteLevel", "Digits", "UnicodeScripts"}
_NON_SHRINKING_NORMALIZERS = {"Prepend", "Lowercase", "NFD", "NFKD"}
_BYTE_PIECES = frozenset(f"<0x{byte:02X}>" for byte in range(256))

_CACHE: WeakKeyDictionary = WeakKeyDictionary()


def max_chars_per_token(tokenizer) -> int | None:
    """B for ``tokenizer`` (a transformers fast tokenizer; module docstring), or None when its
    definition gives no such bound. Computed once per tokenizer object."""
    try:
        return _CACHE[tokenizer]
    except (KeyError, TypeError):
        pass
    bound = chars_per_token_bound(json.loads(tokenizer.backend_tokenizer.to_str()))
    try:
        _CACHE[tokenizer] = bound
    except TypeError:  # not weak-referenceable: compute each time
        pass
    return bound


def chars_that_fit(tokenizer, tokens: int) -> int | None:
    """The most characters a text can have and still be ``tokens`` tokens or fewer (``tokens`` x B),
    or None when the tokenizer gives no bound. A longer text has more than ``tokens`` tokens."""
    bound = max_chars_per_token(tokenizer)
    return None if bound is None else tokens * bound


def chars_per_token_bound(definition: dict) -> int | None:
    """B from a ``tokenizer.json`` definition (a dict), or None (module docstring)."""
    if definition.get("truncation"):
        return None
    shrink = _normalizer_shrink(definition.get("normalizer"))
    if shrink is None or not _keeps_every_character(definition.get("pre_tokenizer")):
        return None
    longest_piece = _longest_piece(definition.get("model") or {})
    if longest_piece is None:
        return None
    longest_added = 0
    for token in definition.get("added_tokens") or []:
        if token.get("lstrip") or token.get("rstrip"):
            return None
        if token.get("normalized"):  # matched on the normalized text, like a piece
            longest_piece = max(longest_piece, len(token["content"]))
        else:
            longest_added = max(longest_added, len(token["content"]))
    return max(math.ceil(longest_piece * shrink), longest_added, 1)


def _normalizer_shrink(normalizer: dict | None) -> float | None:
    """The most the normalizer can shrink a text by (raw length / normalized length), or None."""
    if normalizer is None:
        return 1.0
    kind = normalizer.get("type")
    if kind == "Sequence":
        shrink = 1.0
        for step in normalizer.get("normalizers") or []:
            factor = _normalizer_shrink(step)
            if factor is None:
                return None
            shrink *= factor
        return shrink
    if kind in _NON_SHRINKING_NORMALIZERS:
        return 1.0
    if kind == "Replace":
        pattern, content = normalizer.get("pattern") or {}, normalizer.get("content") or ""
        if "String" not in pattern or not pattern["String"] or not content:
            return None
        return max(1.0, len(pattern["String"]) / len(content))
    return None


def _keeps_every_character(pre_tokenizer: dict | None) -> bool:
    """Whether the pre-tokenizer hands every character of the normalized text on to the model."""
    if pre_tokenizer is None:
        return True
    kind = pre_tokenizer.get("type")
    if kind == "Sequence":
        return all(_keeps_every_character(step) for step in pre_tokenizer.get("pretokenizers") or [])
    if kind in ("Split", "Punctuation"):
        return str(pre_tokenizer.get("behavior", "Isolated")).lower() != "removed"
    return kind in _SAFE_PRE_TOKENIZERS


def _longest_piece(model: dict) -> int | None:
    """The longest vocabulary piece of a model whose tokens each cover one piece, or None."""
    kind = model.get("type")
    if kind == "Unigram":
        pieces = [piece for piece, _ in model.get("vocab") or []]
    elif kind == "BPE":
        pieces = list(model.get("vocab") or {})
        if not model.get("byte_fallback") and model.get("unk_token") is not None and not model.get("fuse_unk"):
            return max(map(len, pieces), default=0) or None  # each unknown character is one unknown token
    else:
        return None
    if not model.get("byte_fallback") or not _BYTE_PIECES <= set(pieces):
        return None  # an unknown character would become an unknown token, fused over a run of them
    return max(map(len, pieces), default=0) or None
