"""Progress lines: bytes, percent, MB/s and ETA, never the URL; one function prints them for every fetch."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


def log_progress(label: str, have: int, total: int | None, rate: float, extra: str = "") -> None:
    """One progress line; ``rate`` in bytes/s, ``extra`` appended (e.g. ", 16 connections")."""
    if total:
        eta = f"{(total - have) / rate:.0f}s" if rate > 0 else "?"
        log.info("%s: %d of %d bytes (%.1f%%) at %.1f MB/s, ETA %s%s",
                 label, have, total, 100 * have / total, rate / 1e6, eta, extra)
    else:
        log.info("%s: %d bytes at %.1f MB/s%s", label, have, rate / 1e6, extra)


class Progress:
    """Calls ``log_progress`` at most every ``interval`` seconds (0: never)."""

    def __init__(self, label: str, interval: float, total: int | None) -> None:
        self.label, self.interval, self.total = label, interval, total
        self._t0 = self._last = time.monotonic()
        self._b0 = 0

    def restart(self, offset: int) -> None:
        """Rates count from ``offset`` on (a resume's bytes were not fetched now)."""
        self._t0, self._b0 = time.monotonic(), offset

    def due(self) -> bool:
        now = time.monotonic()
        if self.interval <= 0 or now - self._last < self.interval:
            return False
        self._last = now
        return True

    def tick(self, offset: int, extra: str = "") -> None:
        if self.due():
            rate = (offset - self._b0) / max(time.monotonic() - self._t0, 1e-9)
            log_progress(self.label, offset, self.total, rate, extra)
