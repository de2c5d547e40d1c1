"""Turn a recipe's `data` section into tokenized SFT samples (input_ids + labels) with a report.

Each file is read (tune.data.conversations), repeated by its weight (whole repeats, the
fractional part drawn with the recipe seed), rendered with the tokenizer's chat template with
the recipe's pinned date and reasoning effort, and labelled assistant-only
(tune.data.chat_masks). Samples longer than `max_seq_len` are dropped or truncated as the recipe
says; a sample left with no supervised token is not trained. Every such case is counted in the
report, which `tune run` prints before training.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from tune.config.schema import Recipe
from tune.data.chat_masks import IGNORE_INDEX, LabelledSample, TemplateMaskError, label_conversation
from tune.data.conversations import read_conversations
from tune.errors import UserError


@dataclass
class DataReport:
    """What preparation kept and what it set aside, per reason."""

    rows_read: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    tokens: int = 0
    supervised_tokens: int = 0
    dropped_overlong: int = 0
    truncated: int = 0
    dropped_unsupervised: int = 0

    def lines(self) -> list[str]:
        out = [f"{Path(name).name}: {rows} rows" for name, rows in self.rows_read.items()]
        share = self.supervised_tokens / self.tokens if self.tokens else 0.0
        out.append(f"{self.samples} samples, {self.tokens:,} tokens, {share:.0%} supervised")
        for label, count in (
            ("dropped: longer than data.max_seq_len", self.dropped_overlong),
            ("truncated to data.max_seq_len", self.truncated),
            ("dropped: no supervised token left", self.dropped_unsupervised),
        ):
            if count:
                out.append(f"{label}: {count}")
        return out


@dataclass
class PreparedData:
    input_ids: list[list[int]]
    labels: list[list[int]]
    report: DataReport
    fingerprint: str

    def to_dataset(self):
        """A `datasets.Dataset` with `input_ids` and `labels`, which TRL takes as already tokenized."""
        from datasets import Dataset

        return Dataset.from_dict({"input_ids": self.input_ids, "labels": self.labels})


def template_kwargs(recipe: Recipe) -> dict:
    """The chat-template variables a recipe pins (so the rendered text never depends on the day)."""
    return {
        "conversation_start_date": recipe.data.conversation_start_date,
        "reasoning_effort": recipe.data.reasoning_effort,
    }


def prepare_sft_data(recipe: Recipe, tokenizer) -> PreparedData:
    """Tokenized, assistant-labelled samples for every dataset of the recipe, in recipe order.

    Raises UserError when a file is malformed (naming file and line), when the template cannot be
    used for masking, or when nothing trainable is left.
    """
    report = DataReport()
    rng = random.Random(recipe.train.seed)
    kwargs = template_kwargs(recipe)
    input_ids, labels = [], []
    digest = hashlib.sha256(json.dumps(kwargs, sort_keys=True).encode())
    for entry in recipe.data.datasets:
        path = Path(entry.path)
        conversations = read_conversations(path)
        report.rows_read[str(path)] = len(conversations)
        digest.update(path.read_bytes())
        for index in _weighted_indices(len(conversations), entry.weight, rng):
            sample = _label(tokenizer, conversations[index], kwargs, path, index)
            sample = _fit(sample, recipe.data.max_seq_len, recipe.data.overlong, report)
            if sample is None:
                continue
            input_ids.append(sample.input_ids)
            labels.append(sample.labels)
            report.samples += 1
            report.tokens += len(sample.input_ids)
            report.supervised_tokens += sample.supervised_tokens
    if not input_ids:
        raise UserError("data: no trainable sample left after preparation; " + "; ".join(report.lines()))
    for ids, labs in zip(input_ids, labels):
        digest.update(json.dumps([ids, labs]).encode())
    return PreparedData(input_ids, labels, report, digest.hexdigest()[:16])


def _weighted_indices(count: int, weight: float, rng: random.Random) -> list[int]:
    """Row indices repeated ``int(weight)`` times, plus a seeded draw for the fractional part."""
    whole, fraction = int(weight), weight - int(weight)
    indices = list(range(count)) * whole
    extra = round(count * fraction)
    indices += sorted(rng.sample(range(count), extra)) if extra else []
    return indices


def _label(tokenizer, messages, kwargs, path: Path, index: int) -> LabelledSample:
    try:
        return label_conversation(tokenizer, messages, kwargs)
    except TemplateMaskError as err:
        raise UserError(f"{path}: conversation {index + 1}: {err}") from None
    except Exception as err:  # the template's own raise_exception checks (jinja TemplateError)
        if type(err).__name__ != "TemplateError":
            raise
        raise UserError(f"{path}: conversation {index + 1}: the chat template refused it: {err}") from None


def _fit(sample: LabelledSample, max_len: int, overlong: str, report: DataReport) -> LabelledSample | None:
    if len(sample.input_ids) > max_len:
        if overlong == "drop":
            report.dropped_overlong += 1
            return None
        report.truncated += 1
        sample = LabelledSample(sample.input_ids[:max_len], sample.labels[:max_len])
    if all(label == IGNORE_INDEX for label in sample.labels):
        report.dropped_unsupervised += 1
        return None
    return sample
