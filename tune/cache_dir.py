"""The folder tune caches built artefacts in (tiny twins, prepared data)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$TUNE_CACHE``, or ``~/.cache/tune`` when it is unset."""
    return Path(os.environ.get("TUNE_CACHE", Path.home() / ".cache" / "tune"))
