"""Test helper: the text a loss mask trains on, as a user would audit it."""

from tune.data.chat_masks import IGNORE_INDEX


def supervised_runs(tokenizer, sample):
    """Decoded text of each maximal run of supervised tokens."""
    runs, current = [], []
    for token_id, label in zip(sample.input_ids, sample.labels):
        if label != IGNORE_INDEX:
            assert label == token_id
            current.append(token_id)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(run, skip_special_tokens=False) for run in runs]
