"""``FlowMeter``: is one stream held back by the link (more connections help) or by this machine (they do not)?"""

from __future__ import annotations

import time

import psutil


class FlowMeter:
    """Held back by the link: the reader waits in ``recv`` for at least ``NETWORK_BOUND`` of the time *and* at
    least ``IDLE`` of the machine's CPU time is idle (where the server shares this machine, a reader also waits
    while the server waits for a core). Each window spans at least ``window_bytes`` and half a second. The
    thresholds and the figures behind them: docs/download.md."""

    NETWORK_BOUND = 0.6
    IDLE = 0.4

    def __init__(self, window_bytes: int, offset: int) -> None:
        self.window_bytes = window_bytes
        self.last: tuple[float, float, float] = (0.0, 0.0, 0.0)  # waiting share, idle share, MB/s of the last window
        self._restart(offset)

    def _restart(self, offset: int) -> None:
        self._start, self._t0, self._waited, self._cpu0 = offset, time.monotonic(), 0.0, psutil.cpu_times()

    def waited(self, seconds: float) -> None:
        self._waited += seconds

    def network_bound(self, offset: int) -> bool:
        """Called after each chunk; True at the end of a window held back by the link."""
        elapsed = time.monotonic() - self._t0
        if offset - self._start < self.window_bytes or elapsed < 0.5:
            return False
        self.last = (self._waited / elapsed, _idle_share(self._cpu0, psutil.cpu_times()),
                     (offset - self._start) / elapsed / 1e6)
        self._restart(offset)
        return self.last[0] >= self.NETWORK_BOUND and self.last[1] >= self.IDLE


def _idle_share(before, after) -> float:  # noqa: ANN001 - psutil's scputimes
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0.0) - getattr(before, "iowait", 0.0))
    return idle / total if total > 0 else 0.0
