"""The deadline-bound polling loop every trigger uses, and the result type both poke and trigger share.

A provider's ``status.py`` turns one API answer into a :class:`PollResult`; the sensor's ``poke`` (worker)
and the trigger's ``run`` (triggerer) call the same function, so the two paths cannot disagree.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import aiohttp

from airflow.triggers.base import BaseTrigger, TriggerEvent

from artifact_harvest.core.errors import ProviderError, TransientProviderError


class Phase(str, Enum):
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


@dataclass(frozen=True)
class PollResult:
    """One look at a remote job: its phase, what to hand on (small JSON only: no URLs), and a log line."""

    phase: Phase
    payload: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @classmethod
    def running(cls, message: str = "", **payload: Any) -> PollResult:
        return cls(Phase.RUNNING, payload, message)

    @classmethod
    def success(cls, message: str = "", **payload: Any) -> PollResult:
        return cls(Phase.SUCCESS, payload, message)

    @classmethod
    def failed(cls, message: str, **payload: Any) -> PollResult:
        return cls(Phase.FAILED, payload, message)


class PollingTrigger(BaseTrigger):
    """Polls until a terminal result or a wall-clock deadline, tolerating a bounded run of transient errors.

    Yields exactly one event, ``{"status": ..., "message": ..., **payload}`` with status one of
    ``success``, ``failed`` (terminal remote failure), ``timeout`` or ``error`` (``retryable``: false only for
    a fatal error, so unknown codes and malformed answers reach Airflow's task retries, as in poke mode). The deadline is wall-clock (``time.time()``) because a trigger can be resumed
    in another triggerer process after a restart. Subclasses implement :meth:`poll` (GET-only, async) and
    :meth:`poll_kwargs` (their own constructor arguments, JSON primitives).
    """

    def __init__(
        self,
        *,
        end_time: float,
        poll_interval: float = 60.0,
        max_transient_errors: int = 5,
    ) -> None:
        super().__init__()
        self.end_time = float(end_time)
        self.poll_interval = float(poll_interval)
        self.max_transient_errors = int(max_transient_errors)

    def poll_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    async def poll(self) -> PollResult:
        raise NotImplementedError

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                **self.poll_kwargs(),
                "end_time": self.end_time,
                "poll_interval": self.poll_interval,
                "max_transient_errors": self.max_transient_errors,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        consecutive_errors = 0
        while True:
            try:
                result = await self.poll()
            except TransientProviderError as exc:
                consecutive_errors += 1
                if consecutive_errors > self.max_transient_errors:
                    yield self._event("error", f"{consecutive_errors} transient errors in a row; last: {exc}",
                                      retryable=True, code=exc.code)
                    return
                self.log.warning("transient error %d/%d: %s", consecutive_errors, self.max_transient_errors, exc)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:  # pragma: no cover - hooks wrap these
                consecutive_errors += 1
                if consecutive_errors > self.max_transient_errors:
                    yield self._event("error", f"{type(exc).__name__}: {exc}", retryable=True)
                    return
                self.log.warning("transient error %d/%d: %s", consecutive_errors, self.max_transient_errors, exc)
            except ProviderError as exc:
                # as on a worker: only a fatal error skips Airflow's retries (unknown codes, malformed answers do not)
                yield self._event("error", str(exc), retryable=not _is_fatal(exc), code=exc.code)
                return
            else:
                consecutive_errors = 0
                if result.phase is Phase.SUCCESS:
                    yield self._event("success", result.message, **result.payload)
                    return
                if result.phase is Phase.FAILED:
                    yield self._event("failed", result.message, **result.payload)
                    return
                self.log.info("%s", result.message or "still running")

            remaining = self.end_time - time.time()
            if remaining <= 0:
                yield self._event("timeout", f"not ready before the deadline ({self.describe()})")
                return
            await asyncio.sleep(min(self.poll_interval, remaining))

    def describe(self) -> str:
        """What is being waited for, for messages (override to name the remote id)."""
        return type(self).__name__

    @staticmethod
    def _event(status: str, message: str, **payload: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, "message": message, **payload})


def _is_fatal(exc: ProviderError) -> bool:
    from airflow.sdk.exceptions import AirflowFailException

    return isinstance(exc, AirflowFailException)
