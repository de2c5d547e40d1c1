"""What a kind of data contributes to the one pipeline: how a record becomes a training sample.

The pipeline (tune.data.pipeline) reads sources, converts, mixes, fits, caches and reports the same
way for every method; a ``SampleBuilder`` supplies only what differs by kind of data:

    build     records -> samples: render with the template and tokenize (a batch at a time);
              the template's refusals become a UserError naming the dataset; a sample that
              ``fit`` would drop as over-long and whose text is too long for any tokenization to
              fit (tune.data.length_bound) is None, never tokenized
    fit       a sample within `data.max_seq_len`: kept, truncated or dropped, and the flags saying
              which (counted in the data report); a None sample is dropped as over-long
    row       a sample as the values of its columns (``schema``)
    padding   the sequence lengths a batch is padded to, and the report's padding figures

tune.data.conversation_samples (SFT: ids + labels) and tune.data.preference_samples (DPO:
prompt / chosen / rejected ids) are the two builders; ``BUILDERS`` maps each record kind to its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np
import pyarrow as pa

from tune.config.schema import DataSection, Recipe
from tune.data.chat_masks import TemplateMaskError
from tune.data.length_bound import chars_that_fit
from tune.data.records import Record
from tune.data.report import DataReport
from tune.errors import UserError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

# What ``fit`` did to a sample (a bit set; a dropped sample is not trained).
TRUNCATED, DROPPED_OVERLONG, DROPPED_UNSUPERVISED = 1, 2, 4
DROPPED = DROPPED_OVERLONG | DROPPED_UNSUPERVISED
TOKEN_IDS = pa.list_(pa.int32())

Sample = TypeVar("Sample")


class SampleBuilder(ABC, Generic[Sample]):
    """The per-kind part of the pipeline (module docstring). Subclasses set the class attributes."""

    kind: str  # the record kind it takes: a card's / converter's `kind`
    schema: pa.Schema  # the columns of a prepared sample, `dataset` (index into data.datasets) last
    what: str  # the record in words, for refusals: "a conversation"
    takes: str  # the datasets it takes, in words: "conversations (sft cards, or ...)"
    none_left: str  # the refusal when no sample survives: "no trainable sample left"
    version: int  # bump when the samples change for the same inputs (part of the cache key)
    sequences: int  # how many sequences the collator builds from one sample (len of ``padded_lengths``)

    def check_options(self, data: DataSection) -> None:
        """Refuse (UserError) `data` options this kind of data cannot honour; none by default."""

    @abstractmethod
    def render(self, tokenizer: PreTrainedTokenizerFast, record: Record, data: DataSection):
        """One record rendered as text (with what ``tokenize`` needs); raises the template's errors."""

    @abstractmethod
    def tokenize(self, tokenizer: PreTrainedTokenizerFast, rendered: list, data: DataSection) -> list[Sample]:
        """Samples for many ``render`` results, tokenized in one batch."""

    @abstractmethod
    def fit(self, sample: Sample, data: DataSection) -> tuple[Sample | None, int]:
        """``sample`` within `data.max_seq_len` (None when dropped) and the flags saying what was done."""

    @abstractmethod
    def length_limit(self, data: DataSection) -> int | None:
        """The token count above which ``fit`` drops a sample whatever else it holds (counted as
        over-long), or None when ``fit`` keeps or cuts over-long samples (they must be tokenized)."""

    @abstractmethod
    def rendered_chars(self, rendered) -> int:
        """The characters of the longest sequence ``tokenize`` encodes from one ``render`` result:
        the one whose tokens ``fit`` compares with ``length_limit``."""

    @abstractmethod
    def row(self, sample: Sample) -> tuple:
        """The sample's column values, in ``schema`` order without `dataset`."""

    @abstractmethod
    def tokens(self, sample: Sample) -> int:
        """Tokens the model reads for this sample (the report's `tokens`)."""

    @abstractmethod
    def supervised(self, sample: Sample) -> int:
        """Tokens that carry the loss."""

    @abstractmethod
    def padded_lengths(self, sample: Sample) -> tuple[int, ...]:
        """The lengths of the sequences the collator builds from this sample (what batches pad)."""

    @abstractmethod
    def add_padding_figures(self, report: DataReport, lengths: np.ndarray, recipe: Recipe) -> None:
        """Fill the report's padding figures from ``padded_lengths`` of the training samples, in order."""

    def build(self, tokenizer: PreTrainedTokenizerFast, records: list[Record], data: DataSection, label: str) -> list[Sample | None]:
        """Render and tokenize ``records`` of the dataset ``label``, one sample per record in order; a
        template that refuses one, or cannot be masked, becomes a UserError naming the dataset.

        Where ``length_limit`` is set, a record whose rendering is longer than that many tokens can
        be in any text (``rendered_chars`` > limit x tune.data.length_bound's chars per token) is
        None instead of a sample: it is never tokenized (a huge row would cost seconds and
        gigabytes there), and ``fit`` would have dropped it as over-long anyway."""
        try:
            rendered = [self.render(tokenizer, record, data) for record in records]
            limit = self.length_limit(data)
            most = None if limit is None else chars_that_fit(tokenizer, limit)
            kept = [index for index, item in enumerate(rendered) if most is None or self.rendered_chars(item) <= most]
            if len(kept) == len(rendered):
                return self.tokenize(tokenizer, rendered, data)
            samples: list[Sample | None] = [None] * len(rendered)
            for index, sample in zip(kept, self.tokenize(tokenizer, [rendered[index] for index in kept], data)):
                samples[index] = sample
            return samples
        except TemplateMaskError as err:
            raise UserError(f"{label}: {err}") from None
        except Exception as err:  # the template's own raise_exception checks
            if type(err).__name__ != "TemplateError":
                raise
            raise UserError(f"{label}: the chat template refused {self.what}: {err}") from None

    def key_part(self) -> dict:
        """What this builder adds to each source's part of the cache key."""
        return {}
