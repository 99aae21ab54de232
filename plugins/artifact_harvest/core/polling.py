"""The deadline-bound polling loop every trigger uses, and the result type both poke and trigger share.

A provider's ``status.py`` turns one API answer into a :class:`PollResult`; the sensor's ``poke`` (worker)
and the trigger's ``run`` (triggerer) call the same function, so the two paths cannot disagree.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

import aiohttp

from airflow.triggers.base import BaseTrigger, TriggerEvent

from artifact_harvest.core import pool
from artifact_harvest.core.errors import ProviderError, QuotaExhausted, TransientProviderError
from artifact_harvest.core.pace import is_rate_limited, wait_deadline


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
    name their own constructor arguments (attributes of the same name, JSON primitives) in ``poll_fields``:
    they are serialized with the trigger and, in a sensor, read from the sensor's attributes of the same name.

    A rate-limit refusal (``core.pace.is_rate_limited``) never counts toward ``max_transient_errors``: the
    client retries it when the connection's pace allows, until ``end_time``. The trigger holds its
    connections' shared HTTP sessions (``core.pool``) until it ends.
    """

    poll_fields: ClassVar[tuple[str, ...]] = ()

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
        """The subclass's own constructor arguments: its ``poll_fields``."""
        return {name: getattr(self, name) for name in self.poll_fields}

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
        async with pool.trigger_scope():
            with wait_deadline(self.end_time):
                async for event in self._run():
                    yield event

    async def _run(self) -> AsyncIterator[TriggerEvent]:
        consecutive_errors = 0
        while True:
            try:
                result = await self.poll()
            except TransientProviderError as exc:
                if is_rate_limited(exc):  # reaches here only at the deadline: the client retries until then
                    self.log.info("refused for the provider's rate (not counted as an error): %s", exc)
                else:
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
                # as on a worker: only a fatal error skips Airflow's retries (unknown codes, malformed answers do not);
                # no balance or quota fails as the retry policy decides on a worker (docs/errors.md)
                text = exc.reason if isinstance(exc, QuotaExhausted) else str(exc)
                yield self._event("error", text, retryable=not _is_fatal(exc), code=exc.code)
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
            await asyncio.sleep(min(self.next_poll_in(), remaining))

    def next_poll_in(self) -> float:
        """Seconds from now to the next poll: ``poll_interval`` (shared polls align waits to their answer's age)."""
        return self.poll_interval

    def describe(self) -> str:
        """What is being waited for, for messages (override to name the remote id)."""
        return type(self).__name__

    @staticmethod
    def _event(status: str, message: str, **payload: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, "message": message, **payload})


#: states a user gives a task by hand (mark failed / mark success): a real kill. A cleared task is None,
#: ``restarting``, ``scheduled`` or ``queued`` instead, and its remote job must keep running for the next try.
KILLED_STATES = frozenset({"failed", "success", "skipped", "upstream_failed", "removed"})


def killed_by_user(ti: Any) -> bool:
    """Whether ``on_kill`` runs because a user killed the task (stop remote work) or cleared it (keep it).

    Airflow calls ``on_kill`` for both (a trigger's on clear, mark failed and mark success; a worker's when a
    cleared running task is terminated), so the task instance's state decides. Unknown (no task instance,
    the state unreadable) counts as not killed: stopping a paid job on a guess is the worse mistake.
    """
    if ti is None:
        return False
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        map_index = getattr(ti, "map_index", -1)
        map_index = -1 if map_index is None else map_index
        states = RuntimeTaskInstance.get_task_states(
            dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id],
            map_index=map_index if map_index >= 0 else None,
        )
        key = ti.task_id if map_index < 0 else f"{ti.task_id}_{map_index}"
        state = (states.get(ti.run_id) or {}).get(key)
    except Exception as exc:  # noqa: BLE001 - no supervisor, API down: do not guess
        logging.getLogger(__name__).warning("cannot read the task's state (%s); not stopping the remote job", exc)
        return False
    logging.getLogger(__name__).info("on_kill: the task instance is now %r", state)
    return str(getattr(state, "value", state)) in KILLED_STATES


async def akilled_by_user(ti: Any) -> bool:
    """:func:`killed_by_user` for triggers: the state lookup is a blocking supervisor call, run in a thread."""
    return await asyncio.to_thread(killed_by_user, ti)


def _is_fatal(exc: ProviderError) -> bool:
    from airflow.sdk.exceptions import AirflowFailException

    return isinstance(exc, (AirflowFailException, QuotaExhausted))
