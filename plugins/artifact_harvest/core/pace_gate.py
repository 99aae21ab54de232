"""``ApiClient``'s pace hooks (docs/pacing.md): a slot of the connection's pace (``core.pace``) before every
attempt, and inside a wait (``core.pace.wait_deadline``) the pause before a rate-limit answer is tried again
without using up an attempt. Neither waits past the wait's deadline."""

from __future__ import annotations

import asyncio
import time

from artifact_harvest.core.errors import TransientProviderError
from artifact_harvest.core.pace import Pace, PaceRefusal, current_deadline, is_rate_limited
from artifact_harvest.core.retry import RetryRule


def _past_deadline(wait: float) -> float | None:
    """Seconds left to the wait's deadline when the pace's slot (``wait`` from now) falls after it."""
    deadline = current_deadline()
    if deadline is None or time.time() + wait <= deadline:
        return None
    return max(deadline - time.time(), 0.0)


def _no_slot(provider: str, what: str) -> PaceRefusal:
    return PaceRefusal(provider, f"{what}: the connection's pace allows no request before the wait's deadline")


def take_slot(pace: Pace, provider: str, what: str) -> None:
    """Sleep until the pace's next slot; past the wait's deadline, sleep to it and raise ``PaceRefusal``."""
    wait = pace.reserve()
    left = _past_deadline(wait)
    if left is not None:
        time.sleep(left)
        raise _no_slot(provider, what)
    if wait > 0:
        time.sleep(wait)


async def atake_slot(pace: Pace, provider: str, what: str) -> None:
    """Async twin of :func:`take_slot`."""
    wait = await pace.areserve()
    left = _past_deadline(wait)
    if left is not None:
        await asyncio.sleep(left)
        raise _no_slot(provider, what)
    if wait > 0:
        await asyncio.sleep(wait)


def refusal_pause(error: TransientProviderError, pace: Pace | None, retry: RetryRule) -> float | None:
    """For a rate-limit answer inside a wait: seconds to sleep before trying again without using up an
    attempt (0 when a pace spaces the tries), or None when the retry rule decides as for any error."""
    deadline = current_deadline()
    if deadline is None or not is_rate_limited(error):
        return None
    if time.time() >= deadline:
        raise error
    if pace is not None:
        return 0.0
    return min(retry.delay(1, error.retry_after), max(deadline - time.time(), 0.0))
