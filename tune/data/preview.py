"""What a loss mask trains on, shown as a person audits it: text with the supervised runs marked.

``supervised_spans`` decodes each maximal run of supervised tokens; ``marked_text`` renders a whole
sample with those runs wrapped in markers (or styled by the caller); ``sample_record`` is the
JSON object `tune data preview --json` prints per SFT sample.

A DPO pair (prompt_ids / chosen_ids / rejected_ids, tune.data.preference_samples) is shown as its
prompt, then each answer: ``pair_runs`` gives the decoded prompt (no token scored) and each answer
as one scored run, decoded after the prompt exactly as an SFT sample's runs are; ``pair_record``
is the JSON object `tune data preview --json` prints per pair.
"""

from __future__ import annotations

from tune.data.chat_masks import IGNORE_INDEX

OPEN, CLOSE = "⟦", "⟧"


def runs(input_ids: list[int], labels: list[int]) -> list[tuple[bool, list[int]]]:
    """The sample as consecutive runs of (supervised?, token ids)."""
    out: list[tuple[bool, list[int]]] = []
    for token, label in zip(input_ids, labels):
        supervised = label != IGNORE_INDEX
        if out and out[-1][0] == supervised:
            out[-1][1].append(token)
        else:
            out.append((supervised, [token]))
    return out


def run_texts(tokenizer, input_ids: list[int], labels: list[int]) -> list[tuple[bool, str]]:
    """(supervised?, text) per run; texts come from decoding growing prefixes, so the spaces a
    SentencePiece decoder strips at the start of a decode stay where they belong."""
    out, end, decoded = [], 0, ""
    for supervised, ids in runs(input_ids, labels):
        end += len(ids)
        text = tokenizer.decode(input_ids[:end], skip_special_tokens=False)
        out.append((supervised, text[len(decoded):]))
        decoded = text
    return out


def supervised_spans(tokenizer, input_ids: list[int], labels: list[int]) -> list[str]:
    """The decoded text of each run of supervised tokens, in order."""
    return [text for supervised, text in run_texts(tokenizer, input_ids, labels) if supervised]


def mark_runs(texts: list[tuple[bool, str]], style=None) -> str:
    """``(supervised?, text)`` runs joined; supervised runs wrapped in ⟦ ⟧, or passed through ``style(text)``."""
    return "".join(
        ((style(text) if style else f"{OPEN}{text}{CLOSE}") if supervised else text) for supervised, text in texts
    )


def marked_text(tokenizer, input_ids: list[int], labels: list[int], style=None) -> str:
    """The whole sample as text; supervised runs wrapped in ⟦ ⟧, or passed through ``style(text)``."""
    return mark_runs(run_texts(tokenizer, input_ids, labels), style)


def pair_runs(tokenizer, prompt_ids: list[int], chosen_ids: list[int], rejected_ids: list[int]
              ) -> tuple[str, list[tuple[bool, str]], list[tuple[bool, str]]]:
    """A DPO pair as (prompt text, chosen runs, rejected runs). The prompt carries no loss; every
    token of each answer does, so each answer is one supervised run (none when it is empty),
    decoded after the prompt as ``run_texts`` decodes an SFT sample's runs."""
    prompt_text = tokenizer.decode(list(prompt_ids), skip_special_tokens=False)

    def answer(ids: list[int]) -> list[tuple[bool, str]]:
        ids = list(ids)
        if not ids:
            return []
        full = [*prompt_ids, *ids]
        texts = run_texts(tokenizer, full, [IGNORE_INDEX] * len(prompt_ids) + ids)
        return [(True, "".join(text for supervised, text in texts if supervised))]

    return prompt_text, answer(chosen_ids), answer(rejected_ids)


def pair_record(tokenizer, dataset_label: str, prompt_ids: list[int], chosen_ids: list[int],
                rejected_ids: list[int]) -> dict:
    """One DPO pair of `tune data preview --json`: the three id lists, the decoded prompt and the
    decoded answers (every answer token carries the loss, no prompt token does), and the dataset."""
    prompt, chosen, rejected = pair_runs(tokenizer, prompt_ids, chosen_ids, rejected_ids)
    return {
        "dataset": dataset_label,
        "prompt_ids": list(prompt_ids),
        "chosen_ids": list(chosen_ids),
        "rejected_ids": list(rejected_ids),
        "prompt": prompt,
        "chosen": "".join(text for _, text in chosen),
        "rejected": "".join(text for _, text in rejected),
    }


def sample_record(tokenizer, dataset_label: str, input_ids: list[int], labels: list[int]) -> dict:
    """One sample of `tune data preview --json`."""
    return {
        "dataset": dataset_label,
        "input_ids": list(input_ids),
        "labels": list(labels),
        "supervised_spans": supervised_spans(tokenizer, input_ids, labels),
    }
