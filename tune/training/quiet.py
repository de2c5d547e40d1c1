"""Silence library chatter that says nothing to a tune user; tune prints its own progress lines.

- datasets' and transformers' per-step progress bars;
- a deprecation warning TRL triggers itself (`is_gradient_checkpointing`);
- bitsandbytes' CPU backend warning that the optional `kernels` package (which downloads a kernel
  from the hub) is missing: on CPUs with AVX512-BF16 it prints at import, on every run. tune never
  installs `kernels` (no hub access in CI; bitsandbytes falls back to its own CPU kernel).
"""

from __future__ import annotations

import logging
import warnings


def quiet_library_chatter() -> None:
    """Apply the silencing above; call before the HF stack is imported (the bitsandbytes warning
    is printed at import time)."""
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
