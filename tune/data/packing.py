"""Packing: several SFT samples share one row of `data.max_seq_len` tokens and never see each other.

Why pack
--------
Chat samples have very different lengths. Batched as they are, every row is padded to the
longest sample of its batch, and the padding costs compute and memory for nothing. Packing puts
several whole samples into one row instead, so (almost) every token slot holds a real token.

A packed sample must train exactly as if it were alone: it may not attend to the samples before
it in the row, its positions (RoPE) must start again at 0, and its first token must not be
"predicted" from the last token of the previous sample. Then the loss of every packed sample
equals its loss unpacked (tests/data/test_packing.py proves it to <= 1e-5 per token in fp32 on
both tiny twins and every attention kernel accepted on CPU).

Worked example
--------------
Five samples (token ids shown by their first digit; ``-`` is a label of -100, i.e. not trained),
``data.max_seq_len = 8``::

    A = 11 12 13 14 15          labels  - 12 13 14 15
    B = 21 22 23                labels  - 22 23
    C = 31 32 33 34             labels  - 32 33 34
    D = 41 42                   labels  - 42
    E = 51 52 53 54 55 56       labels  - 52 53 54 55 56

1. Binning (TRL's ``pack_dataset(..., strategy="bfd")``, best-fit decreasing): longest first,
   each sample goes into the open bin whose free space fits it most tightly, else a new bin::

       E(6) -> new bin 1 [E]      (2 free)
       A(5) -> new bin 2 [A]      (3 free)
       C(4) -> new bin 3 [C]      (4 free)
       B(3) -> bin 2     [A B]    (full)
       D(2) -> bin 1     [E D]    (full)

   The packed dataset has three rows with ``seq_lengths`` [[6, 2], [5, 3], [4]]; ``input_ids``
   and our ``labels`` are concatenated unchanged. No sample is split or cut.

2. Collating (TRL's ``DataCollatorForLanguageModeling(padding_free=True)``): the rows of one
   batch (say bins 1 and 2) are flattened into a single row with no padding at all, and
   ``position_ids`` restart at 0 at every sample::

       input_ids     51 52 53 54 55 56 41 42 11 12 13 14 15 21 22 23
       position_ids   0  1  2  3  4  5  0  1  0  1  2  3  4  0  1  2
       labels         - 52 53 54 55 56  - 42  - 12 13 14 15  - 22 23

   The collator also forces ``labels[position_ids == 0] = -100``, so the last token of one sample
   never learns to predict the first token of the next (our labels are -100 there already), and
   passes ``cu_seq_lens_q/k`` = [0, 6, 8, 13, 16] for the flash-attention kernels. There is no
   ``attention_mask`` in the batch.

3. Attention (transformers 5.24, ``masking_utils.create_causal_mask``): with
   ``attention_mask=None`` and no cache, ``find_packed_sequence_indices(position_ids)`` turns
   every place where the position does not grow by one into a new sample id ([0 0 0 0 0 0 1 1
   2 2 2 2 2 3 3 3]) and the mask becomes causal *and* same-sample, block-diagonal::

       E E E E E E D D A A A A A B B B
       ■ . . . . . . . . . . . . . . .
       ■ ■ . . . . . . . . . . . . . .     each sample sees only itself,
       ...                                  causally; sdpa and eager get it
       . . . . . . ■ . . . . . . . . .     as a dense [1, 1, T, T] mask,
       . . . . . . ■ ■ . . . . . . . .     flex_attention as a BlockMask,
       . . . . . . . . ■ . . . . . . .     flash_attention_* as varlen
       ...                                  cu_seq_lens instead of a mask.

What TRL and transformers do, and why this file is thin
-------------------------------------------------------
TRL 1.16's packing is correct for our already-tokenized ``input_ids`` + ``labels`` datasets:
``SFTTrainer._prepare_dataset`` keeps a ``labels`` column as it is, ``_pack_bfd`` concatenates
it alongside ``input_ids`` and records ``seq_lengths``; with ``packing_strategy="bfd"`` the
trainer turns ``padding_free`` on, and the collator rebuilds per-sample ``position_ids`` from
``seq_lengths`` (``get_position_ids_from_packed_seq_lengths``). So tune only chooses the
settings (``packing_sft_config_kwargs``), guards the two things TRL does silently
(``check_packable``) and reports the numbers (``padding_fraction``, ``packing_summary``). There
is no collator of ours (TRL refuses a custom collator with padding-free anyway).

Traps, each pinned by a test:
    - ``"bfd"`` **silently truncates** a sample longer than ``max_length`` (``pc.list_slice``);
      ``"bfd_split"`` cuts it into pieces that restart at position 0 (the tail loses its
      conversation); ``"wrapped"`` cuts everywhere and lets samples attend to each other.
      tune fits every sample to ``data.max_seq_len`` before (``data.overlong``: drop or
      truncate, counted in the data report), uses ``"bfd"``, and ``check_packable`` refuses
      anything longer. ``_pack_bfd`` also drops empty samples silently: refused as well.
    - Boundaries come only from ``position_ids``: transformers looks for packed samples only
      when the batch has **no attention_mask and no cache**. A batch with an all-ones
      ``attention_mask`` (any collator without padding-free), positions that do not restart,
      or a forward with ``use_cache=True`` (the model config's default: it creates a
      DynamicCache) runs plain causal attention across samples, silently. Training is safe:
      Trainer sets ``model.config.use_cache = args.use_cache`` (False) and
      ``SFTTrainer.compute_loss`` passes ``use_cache=False``; hand-written forwards over packed
      batches must do the same.
    - Cost: the collator flattens the *whole* per-device batch into one row of up to
      ``batch * max_seq_len`` tokens. flash_attention_* (varlen) and flex_attention (block
      sparsity) skip cross-sample work, but sdpa and eager compute (and sdpa materializes a
      boolean mask over) all ``(batch * max_seq_len)**2`` pairs, ``batch`` times the attention
      work of unpacked rows. With sdpa/eager prefer ``train.per_device_batch_size: 1`` and more
      ``train.grad_accumulation``; on GPUs prefer flash_attention_2.
    - The MoE router's load-balancing loss is a per-batch statistic; packing changes the batch
      it is computed over (only the language-model loss is invariant).
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
