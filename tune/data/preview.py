"""What a loss mask trains on, shown as a person audits it: text with the supervised runs marked.

``supervised_spans`` decodes each maximal run of supervised tokens; ``marked_text`` renders a whole
sample with those runs wrapped in markers (or styled by the caller); ``sample_record`` is the
JSON object `tune data preview --json` prints per sample.
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


def marked_text(tokenizer, input_ids: list[int], labels: list[int], style=None) -> str:
    """The whole sample as text; supervised runs wrapped in ⟦ ⟧, or passed through ``style(text)``."""
    return "".join(
        ((style(text) if style else f"{OPEN}{text}{CLOSE}") if supervised else text)
        for supervised, text in run_texts(tokenizer, input_ids, labels)
    )


def sample_record(tokenizer, dataset_label: str, input_ids: list[int], labels: list[int]) -> dict:
    """One sample of `tune data preview --json`."""
    return {
        "dataset": dataset_label,
        "input_ids": list(input_ids),
        "labels": list(labels),
        "supervised_spans": supervised_spans(tokenizer, input_ids, labels),
    }
