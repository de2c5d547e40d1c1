"""The progress line of `tune data tokenize` on stderr: documents/s, tokens/s and the ETA.

Rates are over this run (inputs skipped because an earlier run finished them count as done bytes
but not towards the rates); the ETA extrapolates the bytes read so far to the bytes still to read.
"""

from __future__ import annotations

import sys
import time


class TokenizeProgress:
    """Counts documents, tokens and input bytes; prints a line at most every ``every`` seconds."""

    def __init__(self, total_bytes: int, every: float = 5.0, stream=None, clock=time.monotonic) -> None:
        self.total_bytes = max(total_bytes, 1)
        self.every, self.stream, self.clock = every, stream or sys.stderr, clock
        self.started = self.last = clock()
        self.documents = self.tokens = self.bytes_read = self.bytes_skipped = 0

    def skip(self, size: int) -> None:
        """An input finished by an earlier run: its bytes are done, at no cost."""
        self.bytes_skipped += size

    def add(self, documents: int, tokens: int, bytes_read: int) -> None:
        """``documents`` and ``tokens`` written; ``bytes_read`` more input bytes consumed."""
        self.documents += documents
        self.tokens += tokens
        self.bytes_read += bytes_read
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float | None = None) -> str:
        """``tokenize: 12,000 docs (2,400/s), 3.1M tokens (620k/s), 45% of 1.2 GB, ETA 1m20s``."""
        elapsed = max((self.clock() if now is None else now) - self.started, 1e-9)
        done = self.bytes_read + self.bytes_skipped
        share = min(done / self.total_bytes, 1.0)
        byte_rate = self.bytes_read / elapsed
        eta = (self.total_bytes - done) / byte_rate if byte_rate > 0 else float("inf")
        return (f"tokenize: {self.documents:,} docs ({self.documents / elapsed:,.0f}/s), "
                f"{_si(self.tokens)} tokens ({_si(self.tokens / elapsed)}/s), "
                f"{share:.0%} of {_si(self.total_bytes)}B, ETA {_duration(eta)}")


def _si(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "unknown"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
