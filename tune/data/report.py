"""The data report: what preparation read, kept, set aside and why, per dataset.

Nothing is dropped silently: every bad row, duplicate, held-out row, overlong or unsupervised
sample is counted here, with a few example locations for bad rows. `tune run` prints it before
training; `tune data preview --json` emits it; the cache stores it with the prepared data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

EXAMPLES_PER_REASON = 3


@dataclass
class DatasetStats:
    label: str
    rows_read: int = 0
    bad_rows: Counter = field(default_factory=Counter)  # reason -> count
    bad_examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> ["file:line: detail"]
    duplicates: int = 0
    held_out: int = 0
    train_rows: int = 0  # after weighting
    samples: int = 0  # after the length filter
    tokens: int = 0
    supervised_tokens: int = 0
    dropped_overlong: int = 0
    truncated: int = 0
    dropped_unsupervised: int = 0

    def add_bad_row(self, reason: str, location: str, detail: str) -> None:
        self.bad_rows[reason] += 1
        examples = self.bad_examples.setdefault(reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            examples.append(f"{location}: {detail}")


@dataclass
class DataReport:
    datasets: list[DatasetStats] = field(default_factory=list)
    eval_samples: int = 0
    padding_fraction: float | None = None
    packed_padding_fraction: float | None = None
    packed_fill: float | None = None  # share of each packed row's max_seq_len slots holding tokens

    def totals(self) -> DatasetStats:
        total = DatasetStats("total")
        for stats in self.datasets:
            for name in ("rows_read", "duplicates", "held_out", "train_rows", "samples", "tokens",
                         "supervised_tokens", "dropped_overlong", "truncated", "dropped_unsupervised"):
                setattr(total, name, getattr(total, name) + getattr(stats, name))
            total.bad_rows.update(stats.bad_rows)
        return total

    def lines(self) -> list[str]:
        """The report as short human lines, one per dataset plus totals and warnings."""
        out = []
        for s in self.datasets:
            share = s.supervised_tokens / s.tokens if s.tokens else 0.0
            out.append(
                f"{s.label}: {s.rows_read} rows read -> {s.samples} samples, {s.tokens:,} tokens, "
                f"{share:.0%} supervised"
            )
            for what, count in _set_aside(s):
                out.append(f"  {what}: {count}")
            for reason, count in sorted(s.bad_rows.items()):
                out.append(f"  bad rows ({reason}): {count}, e.g. {s.bad_examples[reason][0]}")
        total = self.totals()
        out.append(f"total: {total.samples} training samples, {total.tokens:,} tokens; {self.eval_samples} held out for eval")
        if self.padding_fraction is not None:
            packed = "" if self.packed_padding_fraction is None else (
                f", packed {self.packed_padding_fraction:.1%} (rows {self.packed_fill:.1%} full)")
            out.append(f"padding: unpacked {self.padding_fraction:.1%}{packed}")
        return out

    def to_dict(self) -> dict:
        return {
            "datasets": [{**asdict(s), "bad_rows": dict(s.bad_rows)} for s in self.datasets],
            "eval_samples": self.eval_samples,
            "padding_fraction": self.padding_fraction,
            "packed_padding_fraction": self.packed_padding_fraction,
            "packed_fill": self.packed_fill,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "DataReport":
        stats = [DatasetStats(**{**d, "bad_rows": Counter(d["bad_rows"])}) for d in data["datasets"]]
        return cls(stats, data["eval_samples"], data["padding_fraction"], data["packed_padding_fraction"],
                   data["packed_fill"])


def _set_aside(s: DatasetStats) -> list[tuple[str, int]]:
    pairs = [
        ("exact duplicates removed", s.duplicates),
        ("held out for eval", s.held_out),
        ("dropped: longer than data.max_seq_len", s.dropped_overlong),
        ("truncated to data.max_seq_len", s.truncated),
        ("dropped: no supervised token left", s.dropped_unsupervised),
    ]
    return [(what, count) for what, count in pairs if count]
