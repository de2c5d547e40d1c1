"""DPO samples: a preference pair -> prompt / chosen / rejected token ids, masked as SFT masks.

Each pair: prompt + chosen and prompt + rejected rendered with the template, the answer located
as SFT's assistant span (tune.data.chat_masks), the ids cut into prompt_ids / chosen_ids /
rejected_ids; overlong pairs dropped or truncated (counted). Everything else (sources, mixture,
cache, report) is the shared pipeline's (tune.data.pipeline).

prompt_ids end in the generation prompt (`<|start|>assistant`); the tokens a DPO completion scores
are exactly those SFT would train on for the same conversation (same template, pinned date and
reasoning effort, no added bos; the end marker included).

Length (`data.max_seq_len` bounds prompt + chosen and prompt + rejected each):
`overlong: drop` drops the pair (untokenized when prompt + an answer renders longer than any
tokenization of max_seq_len tokens can be: tune.data.length_bound); `truncate` cuts the
completions' ends (counted as truncated) and
drops a pair whose prompt alone leaves no completion token (counted as "no supervised token left").
Report figures per dataset: samples = pairs, tokens = prompt + chosen + prompt + rejected,
supervised = chosen + rejected tokens.

Refuses with a UserError: `data.packing` (DPO does not pack), a pair the template refuses or
renders with different prompts for its two answers.

How a pair becomes ids, worked through: docs/loss-masks.md
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tune.config.schema import DataSection, Recipe
from tune.data.chat_masks import IGNORE_INDEX, RenderedChat, TemplateMaskError, tokenize_rendered
from tune.data.records import Preference
from tune.data.render import template_kwargs
from tune.data.report import DataReport
from tune.data.sample_builder import DROPPED_OVERLONG, DROPPED_UNSUPERVISED, TOKEN_IDS, TRUNCATED, SampleBuilder
from tune.errors import UserError

# The columns TRL's DPOTrainer (1.16) collates: DataCollatorForPreference reads these three.
COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")


@dataclass(frozen=True)
class PreferenceSample:
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]

    @property
    def tokens(self) -> int:
        """Tokens the model reads for this pair: the prompt twice, each answer once."""
        return 2 * len(self.prompt_ids) + len(self.chosen_ids) + len(self.rejected_ids)

    @property
    def supervised_tokens(self) -> int:
        return len(self.chosen_ids) + len(self.rejected_ids)


class PreferenceSamples(SampleBuilder[PreferenceSample]):
    kind = "preference"
    schema = pa.schema([*((name, TOKEN_IDS) for name in COLUMNS), ("dataset", pa.int64())])
    what = "a preference pair"
    takes = "preference pairs (preference cards, or `format: preference` files)"
    none_left = "no preference pair left"
    version = 2  # 2: names in messages are text; a pair's own reasoning effort
    sequences = 2  # prompt + chosen, prompt + rejected

    def check_options(self, data: DataSection) -> None:
        if data.packing != "none":
            raise UserError(f"data.packing: {data.packing}: DPO does not pack (TRL's DPOTrainer pads each "
                            "chosen/rejected pair); set data.packing=none")

    def render(self, tokenizer, record: Preference, data: DataSection):
        return render_pair(tokenizer, record, data)

    def tokenize(self, tokenizer, rendered: list, data: DataSection) -> list[PreferenceSample]:
        return tokenize_pairs(tokenizer, rendered)

    def length_limit(self, data: DataSection) -> int | None:
        return data.max_seq_len if data.overlong == "drop" else None

    def rendered_chars(self, rendered) -> int:
        chosen, rejected = rendered  # each the prompt and its answer, encoded whole (tokenize_pairs)
        return max(len(chosen.text), len(rejected.text))

    def fit(self, sample: PreferenceSample, data: DataSection) -> tuple[PreferenceSample | None, int]:
        return fit_pair(sample, data)

    def row(self, sample: PreferenceSample) -> tuple:
        return (sample.prompt_ids, sample.chosen_ids, sample.rejected_ids)

    def tokens(self, sample: PreferenceSample) -> int:
        return sample.tokens

    def supervised(self, sample: PreferenceSample) -> int:
        return sample.supervised_tokens

    def padded_lengths(self, sample: PreferenceSample) -> tuple[int, ...]:
        prompt = len(sample.prompt_ids)
        return (prompt + len(sample.chosen_ids), prompt + len(sample.rejected_ids))

    def add_padding_figures(self, report: DataReport, lengths: np.ndarray, recipe: Recipe) -> None:
        """TRL's collator pads the batch's prompt + chosen and prompt + rejected sequences (2 x batch
        of them) to the longest one."""
        from tune.data.packing import padding_fraction

        report.padding_fraction = padding_fraction(lengths, recipe.data.max_seq_len, 2 * recipe.train.per_device_batch_size,
                                                   packed=False)

    def key_part(self) -> dict:
        return {"prepared_for": "dpo", "dpo_pipeline": self.version}


PREFERENCE_SAMPLES = PreferenceSamples()


def render_pair(tokenizer, record: Preference, data) -> tuple[RenderedChat, RenderedChat]:
    """The renderings of prompt + chosen and prompt + rejected, each cut after its answer, with the
    answer's character span [start, end) as its one span (the last assistant span of
    tune.data.chat_masks) and the template's control tokens up to there (None when no message holds
    a special-token name: names in content are text).

    Raises TemplateMaskError when the template renders text after the answer's end marker (the
    answer would not be scored whole) or renders the prompt differently for the two answers."""
    from tune.data.chat_masks import assistant_spans

    kwargs = template_kwargs(data, record)  # a pair that states its reasoning effort keeps it
    rendered = []
    for part, answer in (("chosen", record.chosen), ("rejected", record.rejected)):
        full, spans, controls = assistant_spans(tokenizer, [dict(m) for m in record.prompt + answer], kwargs)
        start, end = spans[-1]
        if full[end:].strip():
            raise TemplateMaskError(
                f"the chat template writes {full[end:end + 40]!r} after the {part} answer's end marker; "
                "the answer cannot be scored as one completion"
            )
        kept = None if controls is None else tuple(control for control in controls if control[1] <= end)
        rendered.append(RenderedChat(full[:end], [(start, end)], kept))
    chosen, rejected = rendered
    if chosen.text[:chosen.spans[0][0]] != rejected.text[:rejected.spans[0][0]]:
        raise TemplateMaskError("the chat template renders the prompt differently before the chosen and the "
                                "rejected answer; DPO needs one shared prompt")
    return chosen, rejected


def tokenize_pairs(tokenizer, rendered: list) -> list[PreferenceSample]:
    """Ids for many ``render_pair`` results, encoded in one batch exactly as SFT encodes (no bos
    added; a token is in the answer when SFT would supervise it)."""
    labelled = tokenize_rendered(tokenizer, [side for pair in rendered for side in pair])
    samples = []
    for chosen, rejected in zip(labelled[0::2], labelled[1::2]):
        prompt_c, chosen_ids = _split(chosen)
        prompt_r, rejected_ids = _split(rejected)
        if prompt_c != prompt_r:
            raise TemplateMaskError("the prompt tokenizes differently before the chosen and the rejected answer "
                                    "(a token crosses the prompt/answer boundary)")
        samples.append(PreferenceSample(prompt_c, chosen_ids, rejected_ids))
    return samples


def _split(sample) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) of a labelled prompt + answer: the answer is the supervised tail."""
    first = next((i for i, label in enumerate(sample.labels) if label != IGNORE_INDEX), len(sample.labels))
    return sample.input_ids[:first], sample.input_ids[first:]


def fit_pair(sample: PreferenceSample, data: DataSection) -> tuple[PreferenceSample | None, int]:
    """``sample`` with prompt + each answer within max_seq_len (None when it must be dropped), and the
    fit flags (tune.data.sample_builder)."""
    limit = data.max_seq_len
    longest = len(sample.prompt_ids) + max(len(sample.chosen_ids), len(sample.rejected_ids))
    if longest <= limit:
        return sample, 0
    if data.overlong == "drop":
        return None, DROPPED_OVERLONG
    room = limit - len(sample.prompt_ids)
    if room <= 0:
        return None, TRUNCATED | DROPPED_UNSUPERVISED
    return PreferenceSample(sample.prompt_ids, sample.chosen_ids[:room], sample.rejected_ids[:room]), TRUNCATED
