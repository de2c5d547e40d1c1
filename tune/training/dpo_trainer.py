"""TRL's DPOTrainer, taking tune's pre-tokenized preference pairs as they are.

Why this file exists (a workaround, pinned by tests/methods/test_dpo.py): TRL 1.16's
``DPOTrainer._prepare_dataset`` always prepares text. A dataset that already holds
``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` (what tune.data.preference_samples builds, with SFT's
template and masking rules) and no ``prompt`` column is sent through ``extract_prompt``, which
fails with ``KeyError: 'chosen'``; a comment in ``DPOTrainer.evaluate`` says the preparation
"skips datasets that are already tokenized", but the code does not. Re-tokenizing text would not do:
TRL would re-render and re-split the pair and could move the prompt/answer boundary.

The override skips preparation for a dataset that already has exactly those three columns and
hands every other dataset to TRL. TRL's collator (``DataCollatorForPreference``) then builds
``prompt + chosen`` and ``prompt + rejected`` and a completion mask that covers exactly
``chosen_ids`` / ``rejected_ids``; TRL's own length filter (prompt shorter than ``max_length``)
already holds, since tune.data.preference_samples keeps prompt + answer within ``data.max_seq_len`` with
at least one answer token.
"""

from __future__ import annotations

from trl import DPOTrainer

from tune.data.preference_samples import COLUMNS


class PretokenizedDPOTrainer(DPOTrainer):
    """DPOTrainer whose datasets of ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` are used as they are."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        if set(dataset.column_names) == set(COLUMNS):
            return dataset
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
