"""Packing: several SFT samples share one row of `data.max_seq_len` tokens and never see each other.

TRL 1.16 does the packing ("bfd": whole samples, best-fit decreasing) and the padding-free
collation (positions restart at 0 per sample, no attention_mask, no padding); transformers turns
the restarting positions into a block-diagonal mask. This module only:
    - ``packing_sft_config_kwargs``: the SFTConfig settings that turn it on; refuses (UserError) an
      attention implementation that cannot keep packed samples apart (``BOUNDARY_SAFE_ATTENTION``);
    - ``check_packable``: refuses samples "bfd" would silently cut (longer than ``max_len``) or drop
      (empty);
    - ``pack_bins`` / ``packing_summary`` / ``padding_fraction``: the bins and fill TRL will build.
Boundaries come only from ``position_ids``: a forward over packed batches with an attention_mask or
``use_cache=True`` attends across samples, silently (the trainers pass ``use_cache=False``).
With sdpa/eager a packed batch costs ``batch`` times the attention work: prefer per-device batch 1.

Why, with worked examples and the traps each test pins: docs/packing.md
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tune.errors import UserError

# Attention implementations (transformers `attn_implementation`) that keep packed samples apart,
# and how. The first three are exercised on CPU by tests/data/test_packing.py; the flash kernels
# need a GPU and were checked by reading `modeling_flash_attention_utils._flash_attention_forward`
# (varlen path from TRL's `cu_seq_lens_q/k`, or from `position_ids` when those are absent).
BOUNDARY_SAFE_ATTENTION: dict[str, str] = {
    "sdpa": "dense block-diagonal mask from position_ids (masking_utils.find_packed_sequence_indices)",
    "eager": "dense block-diagonal additive mask from position_ids (same detection as sdpa)",
    "flex_attention": "BlockMask from position_ids (same detection as sdpa)",
    "flash_attention_2": "varlen kernel over the collator's cu_seq_lens (GPU only)",
    "flash_attention_3": "varlen kernel over the collator's cu_seq_lens (GPU only)",
    "flash_attention_4": "varlen kernel over the collator's cu_seq_lens (GPU only)",
}

# The packing strategy tune uses: whole samples, best-fit decreasing, never split.
PACKING_STRATEGY = "bfd"


def packing_sft_config_kwargs(attn_implementation: str) -> dict:
    """The SFTConfig keyword arguments that turn packing on, for a model loaded with ``attn_implementation``.

    Merge them into the SFTConfig (they replace ``packing=False``); ``max_length`` must be
    ``data.max_seq_len`` (it is the bin size). Do not pass a ``data_collator``: TRL builds the
    padding-free one itself. Raises UserError, naming ``model.attn_implementation``, for an
    attention implementation that cannot keep packed samples apart.
    """
    if attn_implementation not in BOUNDARY_SAFE_ATTENTION:
        raise UserError(
            f"model.attn_implementation: {attn_implementation!r} cannot keep packed samples apart "
            "(with data.packing: true, several samples share one row and must not attend to each "
            "other). Use sdpa, eager or flex_attention (CPU or GPU), or flash_attention_2 / "
            "flash_attention_3 / flash_attention_4 (GPU), or set data.packing: false."
        )
    return {
        "packing": True,
        "packing_strategy": PACKING_STRATEGY,
        # Implied by "bfd" in TRL 1.16; explicit so the collator's behaviour does not depend on it.
        "padding_free": True,
        # TRL's default "auto" pads only on Neuron; None keeps "no padding at all" true everywhere.
        "pad_to_multiple_of": None,
    }


def check_packable(lengths: Sequence[int], max_len: int) -> None:
    """Refuse samples TRL's "bfd" packing would silently change: longer than ``max_len`` (cut) or empty (dropped).

    ``lengths`` are the token counts of the prepared samples, ``max_len`` is ``data.max_seq_len``
    (the SFTConfig ``max_length``). Raises UserError saying how many samples and what to set.
    """
    import numpy as np

    if max_len < 1:
        raise UserError(f"data.max_seq_len: must be at least 1 to pack samples, got {max_len}")
    lengths = np.asarray(lengths, dtype=np.int64)
    too_long = lengths[lengths > max_len]
    if len(too_long):
        raise UserError(
            f"data.packing: {len(too_long)} sample(s) are longer than data.max_seq_len ({max_len}; "
            f"longest {int(too_long.max())} tokens) and packing would cut them silently. Set data.overlong "
            "(drop or truncate, counted in the data report) or raise data.max_seq_len."
        )
    empty = int((lengths < 1).sum())
    if empty:
        raise UserError(f"data.packing: {empty} sample(s) have no token; packing would drop them silently")


def pack_bins(lengths: Sequence[int], max_len: int) -> list[list[int]]:
    """The sample lengths of every packed row, exactly as TRL's "bfd" packing builds them for the trainer.

    Calls ``trl.pack_dataset`` on a stand-in dataset with the same lengths (no token is stored),
    so the bins follow TRL's algorithm, including its per-map-batch (1,000 samples) binning in
    dataset order. Refuses lengths packing would change (see ``check_packable``).
    """
    packed = _packed_stand_in(lengths, max_len)
    return [] if packed is None else [list(row) for row in packed["seq_lengths"]]


def _packed_stand_in(lengths: Sequence[int], max_len: int):
    """TRL's packed dataset of a stand-in with these sample lengths (None when there is no sample)."""
    import datasets
    import numpy as np
    import pyarrow as pa
    from trl import pack_dataset

    check_packable(lengths, max_len)
    if not len(lengths):
        return None
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]))
    column = pa.LargeListArray.from_arrays(offsets, pa.nulls(int(offsets[-1].as_py())))
    stand_in = datasets.Dataset(pa.table({"input_ids": column}))
    bars_were_on = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        return pack_dataset(stand_in, max_len, PACKING_STRATEGY)
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()


@dataclass(frozen=True)
class PackingSummary:
    """How samples fill the packed rows: ``rows`` bins of ``max_len`` holding ``tokens`` tokens."""

    samples: int
    rows: int
    tokens: int
    max_len: int

    @property
    def unused_tail_fraction(self) -> float:
        """Share of the ``rows * max_len`` slots no sample fills. With the padding-free collator these
        slots are never computed (nothing is padded); it says how far a step falls short of
        ``batch * max_len`` tokens."""
        slots = self.rows * self.max_len
        return 1 - self.tokens / slots if slots else 0.0

    def line(self) -> str:
        return (
            f"packed {self.samples} samples into {self.rows} rows of {self.max_len} tokens "
            f"({1 - self.unused_tail_fraction:.1%} full; no padding: padding-free batches)"
        )


def packing_summary(lengths: Sequence[int], max_len: int) -> PackingSummary:
    """Rows and fill of the packed dataset TRL will build from samples of ``lengths`` tokens."""
    import numpy as np

    packed = _packed_stand_in(lengths, max_len)
    return PackingSummary(samples=len(lengths), rows=0 if packed is None else len(packed),
                          tokens=int(np.asarray(lengths, dtype=np.int64).sum()), max_len=max_len)


def padding_fraction(lengths: Sequence[int], max_len: int, batch_size: int, packed: bool) -> float:
    """The fraction of token slots in training batches that would be padding.

    Unpacked: the samples in dataset order, ``batch_size`` per batch, each batch padded to its
    longest sample (what TRL's collator does; samples longer than ``max_len`` count as cut to it,
    as TRL truncates them). The trainer draws batches in a shuffled order, so this is the
    in-order figure, not the exact one of a run.

    Packed: TRL's padding-free collator concatenates the packed rows of a batch into one row and
    pads nothing (``pad_to_multiple_of`` is None in ``packing_sft_config_kwargs``), so this is
    exactly 0.0 once the lengths are packable (refused otherwise, see ``check_packable``). How
    full the bins are is ``packing_summary(...).unused_tail_fraction``.
    """
    import numpy as np

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    if packed:
        check_packable(lengths, max_len)
        return 0.0
    clipped = np.minimum(np.asarray(lengths, dtype=np.int64), max_len)
    if not len(clipped):
        return 0.0
    starts = np.arange(0, len(clipped), batch_size)
    widths = np.diff(np.append(starts, len(clipped)))
    slots = int((np.maximum.reduceat(clipped, starts) * widths).sum())
    tokens = int(clipped.sum())
    return 1 - tokens / slots if slots else 0.0
