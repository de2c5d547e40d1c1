"""Prepare a recipe's DPO data: preference records -> prompt / chosen / rejected token ids, cached.

    for each dataset:   rows (card samples, local file/folder, or hub)  -- tune.data.sources
                        -> Preference records, bad rows counted          -- tune.data.converters
    all datasets:       dedup, shuffle, max_rows, eval hold-out, weights -- tune.data.mixture
    each pair:          prompt + chosen and prompt + rejected rendered with the template, the
                        answer located as SFT's assistant span           -- tune.data.chat_masks
                        -> ids cut into prompt_ids / chosen_ids / rejected_ids
                        -> overlong pairs dropped or truncated (counted)
    cache:              keyed like SFT data, plus this pipeline's name   -- tune.data.cache

How a pair becomes ids, worked through (system block elided)::

    prompt   [user: Hi]          chosen [assistant: Hello]       rejected [assistant: Go away]
    full(prompt + chosen)   = <|start|>user<|message|>Hi<|end|><|start|>assistant<|channel|>final<|message|>Hello<|return|>
                                                                                   ^ the assistant span SFT supervises starts here
    prompt_ids   = the tokens before the span: what the model is prompted with (ends in the
                   generation prompt `<|start|>assistant`, exactly as add_generation_prompt renders it)
    chosen_ids   = the span's tokens: `<|channel|>final<|message|>Hello<|return|>`, end marker included
    rejected_ids = the same for prompt + rejected; its prompt tokens must equal the chosen side's

The text is the tokenizer's own chat template (or `instruct_ja`) with the recipe's pinned date and
reasoning effort (tune.data.render.template_kwargs), encoded without an added bos, and the spans are
tune.data.chat_masks' assistant spans: the tokens a DPO completion scores are exactly those SFT
would train on for the same conversation. TRL's DPOTrainer concatenates prompt + completion again
and scores the completion tokens.

Length (`data.max_seq_len` bounds prompt + chosen and prompt + rejected each):
`overlong: drop` drops the pair; `truncate` cuts the completions' ends (counted as truncated) and
drops a pair whose prompt alone leaves no completion token (counted as "no supervised token left").
Report figures per dataset: samples = pairs, tokens = prompt + chosen + prompt + rejected,
supervised = chosen + rejected tokens.

Refuses with a UserError: a dataset of the wrong kind for DPO (conversations or text), the first
bad row when `data.on_bad_row: error` (naming file and row), `data.packing` (DPO does not pack),
a pair the template refuses or renders with different prompts for its two answers, and a
mixture with no pair left.
"""

from __future__ import annotations

from dataclasses import dataclass

from tune.config.schema import Recipe
from tune.data import cache
from tune.data.chat_masks import IGNORE_INDEX, TemplateMaskError, tokenize_rendered
from tune.data.mixture import build_mixture
from tune.data.prepare import TOKENIZE_BATCH, PreparedData, _convert, open_sources, render_or_refuse, source_key_parts
from tune.data.records import Preference, record_key
from tune.data.render import template_kwargs
from tune.data.report import DataReport, DatasetStats
from tune.errors import UserError

# The columns TRL's DPOTrainer (1.16) collates: DataCollatorForPreference reads these three.
COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")
# Bump when DPO preparation changes its output for the same inputs (part of the cache key).
PREFERENCE_PIPELINE_VERSION = 1


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


def prepare_dpo_data(recipe: Recipe, tokenizer) -> PreparedData:
    """The recipe's training and eval pairs as ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids``
    (plus ``dataset``, the index into data.datasets); from the cache when an identical preparation exists."""
    data = recipe.data
    if data.packing:
        raise UserError("data.packing: DPO does not pack (TRL's DPOTrainer pads each chosen/rejected pair); "
                        "set data.packing=false")
    sources, converters = open_sources(
        data, "preference", "method dpo trains on preference pairs (preference cards, or `format: preference` files)")
    parts = source_key_parts(sources, converters, prepared_for="dpo", dpo_pipeline=PREFERENCE_PIPELINE_VERSION)
    key = cache.cache_key(data, recipe.train.seed, parts, cache.tokenizer_fingerprint(tokenizer))
    if data.cache:
        hit = cache.load_cached(key)
        if hit is not None:
            return PreparedData(*hit, key=key, from_cache=True)

    stats = [DatasetStats(source.label) for source in sources]
    records = [_convert(source, converter, stat, data.on_bad_row)
               for source, converter, stat in zip(sources, converters, stats)]
    mixture = build_mixture(records, stats, data, recipe.train.seed)
    train = _tokenize_all(tokenizer, mixture.train, data, stats, count=True)
    eval_rows = _tokenize_all(tokenizer, mixture.eval, data, stats, count=False)
    if not train["prompt_ids"]:
        raise UserError("data: no preference pair left after preparation:\n" + "\n".join(DataReport(stats).lines()))
    report = DataReport(stats, eval_samples=len(eval_rows["prompt_ids"]))
    report.padding_fraction = pair_padding_fraction(train, data.max_seq_len, recipe.train.per_device_batch_size)

    from datasets import Dataset

    train_set, eval_set = Dataset.from_dict(train), Dataset.from_dict(eval_rows)
    if data.cache:
        cache.store(key, train_set, eval_set, report)
    return PreparedData(train_set, eval_set, report, key, from_cache=False)


def render_pair(tokenizer, record: Preference, data) -> tuple[tuple[str, tuple[int, int]], tuple[str, tuple[int, int]]]:
    """The rendered texts of prompt + chosen and prompt + rejected, each cut after its answer, with
    the answer's character span [start, end): the last assistant span of tune.data.chat_masks.

    Raises TemplateMaskError when the template renders text after the answer's end marker (the
    answer would not be scored whole) or renders the prompt differently for the two answers."""
    from tune.data.chat_masks import assistant_spans

    kwargs = template_kwargs(data)
    rendered = []
    for part, answer in (("chosen", record.chosen), ("rejected", record.rejected)):
        full, spans = assistant_spans(tokenizer, [dict(m) for m in record.prompt + answer], kwargs)
        start, end = spans[-1]
        if full[end:].strip():
            raise TemplateMaskError(
                f"the chat template writes {full[end:end + 40]!r} after the {part} answer's end marker; "
                "the answer cannot be scored as one completion"
            )
        rendered.append((full[:end], (start, end)))
    (chosen_text, (chosen_start, _)), (rejected_text, (rejected_start, _)) = rendered
    if chosen_text[:chosen_start] != rejected_text[:rejected_start]:
        raise TemplateMaskError("the chat template renders the prompt differently before the chosen and the "
                                "rejected answer; DPO needs one shared prompt")
    return rendered[0], rendered[1]


def tokenize_pairs(tokenizer, rendered: list) -> list[PreferenceSample]:
    """Ids for many ``render_pair`` results, encoded in one batch exactly as SFT encodes (no bos
    added; a token is in the answer when SFT would supervise it)."""
    flat = [side for pair in rendered for side in pair]
    labelled = tokenize_rendered(tokenizer, [(text, [span]) for text, span in flat])
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


def _tokenize_all(tokenizer, rows, data, stats: list[DatasetStats], count: bool) -> dict:
    """Columns for every (dataset index, record) row. Each distinct record is rendered and
    tokenized once (an upsampled row is the same pair again), in batches."""
    samples: dict[str, PreferenceSample | None] = {}
    pending_keys, pending = [], []
    keys = []

    def flush():
        samples.update(zip(pending_keys, tokenize_pairs(tokenizer, pending)))
        pending_keys.clear()
        pending.clear()

    for index, record in rows:
        key = record_key(record)
        keys.append(key)
        if key in samples:
            continue
        samples[key] = None
        pending_keys.append(key)
        pending.append(render_or_refuse(tokenizer, record, data, stats[index].label, render_pair, "a preference pair"))
        if len(pending_keys) == TOKENIZE_BATCH:
            flush()
    flush()
    columns = {name: [] for name in (*COLUMNS, "dataset")}
    for (index, _), key in zip(rows, keys):
        sample = fit_pair(samples[key], data, stats[index] if count else None)
        if sample is None:
            continue
        columns["prompt_ids"].append(sample.prompt_ids)
        columns["chosen_ids"].append(sample.chosen_ids)
        columns["rejected_ids"].append(sample.rejected_ids)
        columns["dataset"].append(index)
        if count:
            stats[index].samples += 1
            stats[index].tokens += sample.tokens
            stats[index].supervised_tokens += sample.supervised_tokens
    return columns


def fit_pair(sample: PreferenceSample, data, stats: DatasetStats | None) -> PreferenceSample | None:
    """``sample`` with prompt + each answer within max_seq_len (or None, counted, when it must be dropped)."""
    limit = data.max_seq_len
    longest = len(sample.prompt_ids) + max(len(sample.chosen_ids), len(sample.rejected_ids))
    if longest <= limit:
        return sample
    if data.overlong == "drop":
        if stats:
            stats.dropped_overlong += 1
        return None
    room = limit - len(sample.prompt_ids)
    if room <= 0:
        if stats:
            stats.truncated += 1
            stats.dropped_unsupervised += 1
        return None
    if stats:
        stats.truncated += 1
    return PreferenceSample(sample.prompt_ids, sample.chosen_ids[:room], sample.rejected_ids[:room])


def pair_padding_fraction(columns: dict, max_len: int, batch_size: int) -> float:
    """Padding share of training batches: TRL's collator pads the batch's prompt + chosen and
    prompt + rejected sequences (2 x batch of them) to the longest one."""
    from tune.data.packing import padding_fraction

    lengths = []
    for prompt, chosen, rejected in zip(columns["prompt_ids"], columns["chosen_ids"], columns["rejected_ids"]):
        lengths += [len(prompt) + len(chosen), len(prompt) + len(rejected)]
    return padding_fraction(lengths, max_len, 2 * batch_size, packed=False)
