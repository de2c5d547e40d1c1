"""The data report: what preparation read, kept, set aside and why, per dataset.

Nothing is dropped silently: every bad row, duplicate, held-out row, overlong or unsupervised
sample is counted here, with a few example locations for bad rows. The rows converted are counted
by the shape their converter found them in (tune.data.converters); a dataset's shapes are printed
when its rows came in more than one, or in one other than the converter's usual shape. `tune run`
prints it before training; `tune data preview --json` emits it; the cache stores it with the
prepared data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

EXAMPLES_PER_REASON = 3
WINDOW_FIGURES = ("windows", "windows_unsupervised", "window_tail_tokens", "eval_windows")


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
    shapes: Counter = field(default_factory=Counter)  # shape -> rows converted in it
    default_shape: str | None = None  # the converter's usual shape

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
    # `data.packing: concat` (tune.data.concat_windows): training windows kept, windows dropped for
    # having no supervised token, tokens of the last partial window (dropped), eval windows
    windows: int | None = None
    windows_unsupervised: int | None = None
    window_tail_tokens: int | None = None
    eval_windows: int | None = None

    def add_windows(self, train, eval_kept: int) -> None:
        """Record what cutting the samples into windows left (a tune.data.concat_windows.Windows and the eval count)."""
        self.windows, self.windows_unsupervised = train.kept, train.unsupervised
        self.window_tail_tokens, self.eval_windows = train.tail_tokens, eval_kept

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
            if len(s.shapes) > 1 or set(s.shapes) - {s.default_shape}:
                out.append("  rows by shape: " + ", ".join(f"{shape} {count}" for shape, count in sorted(s.shapes.items())))
            for what, count in _set_aside(s):
                out.append(f"  {what}: {count}")
            for reason, count in sorted(s.bad_rows.items()):
                out.append(f"  bad rows ({reason}): {count}, e.g. {s.bad_examples[reason][0]}")
        total = self.totals()
        out.append(f"total: {total.samples} training samples, {total.tokens:,} tokens; {self.eval_samples} held out for eval")
        if self.windows is not None:
            out.append(f"concat: {self.windows} training windows ({self.eval_windows} eval); dropped: "
                       f"{self.windows_unsupervised} without a supervised token, the last {self.window_tail_tokens} "
                       "tokens (a partial window)")
        if self.padding_fraction is not None:
            packed = "" if self.packed_padding_fraction is None else (
                f", packed {self.packed_padding_fraction:.1%} (rows {self.packed_fill:.1%} full)")
            out.append(f"padding: unpacked {self.padding_fraction:.1%}{packed}")
        return out

    def to_dict(self) -> dict:
        return {
            "datasets": [{**asdict(s), "bad_rows": dict(s.bad_rows), "shapes": dict(s.shapes)} for s in self.datasets],
            "eval_samples": self.eval_samples,
            "padding_fraction": self.padding_fraction,
            "packed_padding_fraction": self.packed_padding_fraction,
            "packed_fill": self.packed_fill,
            **{name: getattr(self, name) for name in WINDOW_FIGURES},
        }

    @classmethod
    def from_dict(cls, data: dict) -> "DataReport":
        stats = [DatasetStats(**{**d, "bad_rows": Counter(d["bad_rows"]), "shapes": Counter(d["shapes"])})
                 for d in data["datasets"]]
        report = cls(stats, data["eval_samples"], data["padding_fraction"], data["packed_padding_fraction"],
                     data["packed_fill"])
        for name in WINDOW_FIGURES:
            setattr(report, name, data.get(name))
        return report


def _set_aside(s: DatasetStats) -> list[tuple[str, int]]:
    pairs = [
        ("exact duplicates removed", s.duplicates),
        ("held out for eval", s.held_out),
        ("dropped: longer than data.max_seq_len", s.dropped_overlong),
        ("truncated to data.max_seq_len", s.truncated),
        ("dropped: no supervised token left", s.dropped_unsupervised),
    ]
    return [(what, count) for what, count in pairs if count]
