"""SFT samples: a conversation -> token ids + labels that supervise the assistant's turns only.

The text is the tokenizer's own chat template (or `instruct_ja`) with the recipe's pinned date and
reasoning effort (tune.data.render); the labels come from tune.data.chat_masks (prefix rendering,
each turn's end marker included; `data.train_on: last_assistant` keeps only the last turn).

Length (`data.max_seq_len`): `overlong: drop` drops a longer sample (one whose rendered text is
longer than any tokenization of max_seq_len tokens can be is dropped untokenized:
tune.data.length_bound); `truncate` cuts it (counted as truncated) and drops it when no supervised
token is left (counted as "no supervised token left").
With `data.packing: concat` every sample is kept whole: tune.data.concat_windows cuts the stream.
Padding figures: unpacked (batches of `train.per_device_batch_size` padded to their longest) and,
with `data.packing`, packed (0 by construction) with how full the packed rows are.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tune.config.schema import DataSection, Recipe
from tune.data.chat_masks import LabelledSample
from tune.data.records import Conversation
from tune.data.render import render_text, tokenize_texts
from tune.data.report import DataReport
from tune.data.sample_builder import DROPPED_OVERLONG, DROPPED_UNSUPERVISED, TOKEN_IDS, TRUNCATED, SampleBuilder


class ConversationSamples(SampleBuilder[LabelledSample]):
    kind = "sft"
    schema = pa.schema([("input_ids", TOKEN_IDS), ("labels", TOKEN_IDS), ("dataset", pa.int64())])
    what = "a conversation"
    takes = "conversations (sft cards, or messages / llmjp4_sft / sharegpt / alpaca files)"
    none_left = "no trainable sample left"
    version = 2  # 2: special-token names in messages are text (docs/literal-control-strings.md)
    sequences = 1

    def render(self, tokenizer, record: Conversation, data: DataSection):
        return render_text(tokenizer, record, data)

    def tokenize(self, tokenizer, rendered: list, data: DataSection) -> list[LabelledSample]:
        return tokenize_texts(tokenizer, rendered, data)

    def length_limit(self, data: DataSection) -> int | None:
        return data.max_seq_len if data.overlong == "drop" and data.packing != "concat" else None

    def rendered_chars(self, rendered) -> int:
        return len(rendered.text)  # the ids are the whole rendered text's (tune.data.chat_masks)

    def fit(self, sample: LabelledSample, data: DataSection) -> tuple[LabelledSample | None, int]:
        if data.packing == "concat":  # windows split long samples; a sample without loss still gives context
            return sample, 0
        flags = 0
        if len(sample.input_ids) > data.max_seq_len:
            if data.overlong == "drop":
                return None, DROPPED_OVERLONG
            flags = TRUNCATED
            sample = LabelledSample(sample.input_ids[: data.max_seq_len], sample.labels[: data.max_seq_len])
        if not sample.supervised_tokens:
            return None, flags | DROPPED_UNSUPERVISED
        return sample, flags

    def row(self, sample: LabelledSample) -> tuple:
        return (sample.input_ids, sample.labels)

    def tokens(self, sample: LabelledSample) -> int:
        return len(sample.input_ids)

    def supervised(self, sample: LabelledSample) -> int:
        return sample.supervised_tokens

    def padded_lengths(self, sample: LabelledSample) -> tuple[int, ...]:
        return (len(sample.input_ids),)

    def add_padding_figures(self, report: DataReport, lengths: np.ndarray, recipe: Recipe) -> None:
        from tune.data.packing import packing_summary, padding_fraction

        max_len, batch = recipe.data.max_seq_len, recipe.train.per_device_batch_size
        report.padding_fraction = padding_fraction(lengths, max_len, batch, packed=False)
        if recipe.data.packing == "isolated":
            summary = packing_summary(lengths, max_len)  # refuses what packing would cut or drop
            report.packed_padding_fraction = 0.0  # the padding-free collator pads nothing (tune.data.packing)
            report.packed_fill = 1 - summary.unused_tail_fraction


CONVERSATION_SAMPLES = ConversationSamples()
