"""A one-line progress bar on stderr for the lab's long commands (replay, backtest, fit).

Drawn only where someone watches: on a terminal, or when asked (``--progress``); a pipe or a
log file gets nothing, so outputs and logs stay as they were.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "wanted"]

WIDTH = 30
#: Redraw at most this often: drawing is a write to a terminal, not free.
EVERY_SECONDS = 0.2


def wanted(asked: bool, stream: TextIO | None = None) -> bool:
    """Whether to draw: when asked, or when ``stream`` (stderr) is a terminal."""
    stream = stream or sys.stderr
    return asked or (hasattr(stream, "isatty") and stream.isatty())


class Progress:
    """``label [#####.....] 52% 780,000/1,500,000 events 41,000/s ETA 18 s``, redrawn in place."""

    def __init__(
        self, label: str, total: int, unit: str, *, enabled: bool, stream: TextIO | None = None
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.enabled = enabled and total > 0
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self._drawn = 0.0
        self.done = 0

    def update(self, done: int) -> None:
        """``done`` of ``total`` are done; redraw if the last drawing is old enough."""
        self.done = done
        now = time.monotonic()
        if self.enabled and (now - self._drawn >= EVERY_SECONDS or done >= self.total):
            self._drawn = now
            self.stream.write("\r" + self.line(now))
            self.stream.flush()

    def line(self, now: float) -> str:
        share = min(1.0, self.done / self.total)
        filled = round(share * WIDTH)
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta = f"ETA {left:,.0f} s" if left != float("inf") else "ETA –"
        return (
            f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {share:4.0%} "
            f"{self.done:,}/{self.total:,} {self.unit} {rate:,.0f}/s {eta}  "
        )

    def close(self) -> None:
        """End the line, so that what is printed next starts on its own."""
        if self.enabled:
            self.update(self.done)
            self.stream.write("\n")
            self.stream.flush()
