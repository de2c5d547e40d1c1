"""Progress of a long data step, per dataset: rows done, rows/s and ETA.

On a terminal (stderr is a tty) a bar redraws in place on stderr and is cleared when the step
ends. In a log (stderr redirected, a cluster job) a line is written to stderr every ``interval``
seconds, and a last line when the step ends, but only for a step that ran long enough to print
one: short preparations stay silent. stdout is never used, so `tune data preview --json` stays
one JSON document.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import TextIO

LOG_INTERVAL_S = 10.0
BAR_INTERVAL_S = 0.1
BAR_WIDTH = 24


class Progress:
    """The progress of ``what`` (e.g. "rendering card flan (samples)") over ``total`` rows (None when
    unknown: no percentage, no ETA). Call ``advance(n)`` as rows finish, ``close()`` at the end.
    ``interval`` (seconds between log lines) defaults to ``LOG_INTERVAL_S``."""

    def __init__(self, what: str, total: int | None, stream: TextIO | None = None,
                 interval: float | None = None, clock=time.monotonic) -> None:
        self.what, self.total = what, total
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = BAR_INTERVAL_S if self.terminal else (LOG_INTERVAL_S if interval is None else interval)
        self.clock = clock
        self.started = self.last_shown = clock()
        self.done = 0
        self.shown = False

    def advance(self, rows: int) -> None:
        """Count ``rows`` more rows done; redraw (terminal) or write a line (log) when it is time."""
        self.done += rows
        now = self.clock()
        if now - self.last_shown >= self.interval:
            self.last_shown = now
            self._show(now, final=False)

    def close(self) -> None:
        """End the step: clear the bar, or write the last line when a line was written before."""
        if self.terminal and self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
        elif self.shown:
            self._show(self.clock(), final=True)

    def line(self, now: float, final: bool = False) -> str:
        """The progress as one line of text."""
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        count = f"{self.done:,}" if self.total is None else f"{self.done:,}/{self.total:,} rows ({self.done / max(self.total, 1):.0%})"
        text = f"data: {self.what}: {count}, {rate:,.0f} rows/s"
        if final:
            return text + f", done in {timedelta(seconds=round(elapsed))}"
        if self.total is not None and rate > 0:
            text += f", ETA {timedelta(seconds=round(max(self.total - self.done, 0) / rate))}"
        return text

    def _show(self, now: float, final: bool) -> None:
        self.shown = True
        text = self.line(now, final)
        if self.terminal:
            self.stream.write("\r\033[K" + self._bar() + " " + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def _bar(self) -> str:
        if not self.total:
            return ""
        filled = min(BAR_WIDTH, round(BAR_WIDTH * self.done / self.total))
        return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]"
