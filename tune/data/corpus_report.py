"""What `tune run` and `tune data preview` say about a `cpt` recipe's corpora: sizes, mixture, run length.

Per corpus: documents and tokens (from its `.idx`), repeat (or share), the target share (its
normalized blend weight) and the realized one (how many of the planned samples Megatron's
BlendedDataset draws from it, counted in its ``dataset_index``), the epochs seen (windows drawn x
`data.max_seq_len` / the tokens of its training documents) and the windows held out for evaluation.
Then the eval-only corpora, the totals, and the planned steps, samples and tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class CorpusFigures:
    """One training corpus's line of the report."""

    name: str
    prefix: str
    documents: int
    tokens: int
    train_tokens: int
    repeat: float | None
    share: float | None
    target: float
    drawn: int
    held_out_documents: int
    held_out_windows: int


@dataclass(frozen=True)
class EvalCorpusFigures:
    """One eval-only corpus's line of the report."""

    name: str
    prefix: str
    documents: int
    tokens: int
    windows: int


@dataclass
class CorpusReport:
    """The figures of a corpus preparation (module docstring); ``lines`` for people, ``to_dict`` for JSON."""

    corpora: list[CorpusFigures]
    seq_len: int
    seed: int
    steps: int
    global_batch: int
    eval_corpora: list[EvalCorpusFigures] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return self.steps * self.global_batch

    def realized(self, figures: CorpusFigures) -> float:
        return figures.drawn / self.samples if self.samples else 0.0

    def epochs_seen(self, figures: CorpusFigures) -> float:
        return figures.drawn * self.seq_len / figures.train_tokens if figures.train_tokens else 0.0

    def lines(self) -> list[str]:
        out = [f"corpora: {len(self.corpora)}, windows of {self.seq_len:,} + 1 tokens, seed {self.seed}"]
        for c in self.corpora:
            weight = f"share {c.share:g}" if c.share is not None else f"repeat {1.0 if c.repeat is None else c.repeat:g}"
            held = (f"held out {c.held_out_documents:,} document(s) ({c.held_out_windows:,} eval windows)"
                    if c.held_out_documents else "nothing held out")
            out.append(f"  {c.name}: {c.documents:,} documents, {c.tokens:,} tokens, {weight}, target {c.target:.2%}, "
                       f"realized {self.realized(c):.2%} ({c.drawn:,} windows), {self.epochs_seen(c):.3g} epochs seen; "
                       f"{held}")
        for e in self.eval_corpora:
            out.append(f"  {e.name} (eval only): {e.documents:,} documents, {e.tokens:,} tokens, {e.windows:,} eval windows")
        documents = sum(c.documents for c in self.corpora)
        tokens = sum(c.tokens for c in self.corpora)
        out.append(f"total: {documents:,} documents, {tokens:,} tokens in the training corpora")
        out.append(f"planned: {self.steps:,} steps x global batch {self.global_batch:,} = {self.samples:,} windows "
                   f"= {self.samples * self.seq_len:,} tokens")
        return out

    def to_dict(self) -> dict:
        return {
            "corpora": [{**asdict(c), "realized": self.realized(c), "epochs_seen": self.epochs_seen(c)} for c in self.corpora],
            "eval_corpora": [asdict(e) for e in self.eval_corpora],
            "seq_len": self.seq_len, "seed": self.seed, "steps": self.steps, "global_batch": self.global_batch,
            "samples": self.samples, "tokens": self.samples * self.seq_len,
        }
