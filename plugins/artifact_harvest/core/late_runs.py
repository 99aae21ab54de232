"""What happens when a run's deadline passes (``core.deadlines``): one log line in the triggerer naming the run
and the tasks still waiting, and, when ``[artifact_harvest] deadline_webhook_url`` is set, one JSON POST to it.

Provider-agnostic. The webhook URL (its path and query may hold a token) is never logged nor returned: log lines
name its scheme and host only, and failures their kind and HTTP status, never the client's message (which
quotes the URL). docs/deadlines.md.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from artifact_harvest.core.config import setting

log = logging.getLogger(__name__)

#: task states that mean "not done yet", the waits first
WAITING_STATES = ("deferred", "up_for_reschedule", "running", "up_for_retry", "queued", "scheduled")
#: a run in one of these states when its deadline passes is late; one that ended is not reported
ACTIVE_RUN_STATES = ("queued", "running")
WEBHOOK_ATTEMPTS = 3
WEBHOOK_TIMEOUT = 10.0
#: seconds before the second attempt; doubled for the third
WEBHOOK_BACKOFF = 1.0


def _as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def human_duration(seconds: float) -> str:
    """``3 h 2 min``, ``2 min 5 s``, ``4.2 s``: how late, for a person."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n][:2]
    return " ".join(shown)


@dataclass
class LateRun:
    """A run past its deadline, from the context Airflow passes a deadline callback."""

    dag_id: str
    run_id: str
    state: str
    queued_at: datetime | None
    deadline: datetime
    late_seconds: float
    waiting: list[dict[str, str]] | None = field(default=None)

    @classmethod
    def from_context(cls, context: dict[str, Any], now: datetime | None = None) -> LateRun:
        run, deadline = context.get("dag_run") or {}, context.get("deadline") or {}
        deadline_time = _as_datetime(deadline.get("deadline_time")) or datetime.now(timezone.utc)
        now = now or datetime.now(timezone.utc)
        return cls(dag_id=str(run.get("dag_id", "")), run_id=str(run.get("dag_run_id", "")),
                   state=str(run.get("state", "")), queued_at=_as_datetime(run.get("queued_at")),
                   deadline=deadline_time, late_seconds=max((now - deadline_time).total_seconds(), 0.0))

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_RUN_STATES

    def waiting_text(self) -> str:
        if self.waiting is None:
            return "unknown (task states unavailable)"
        return ", ".join(f"{t['task']} ({t['state']})" for t in self.waiting) or "no task (the run is between tasks)"

    def message(self) -> str:
        allowed = (f" ({human_duration((self.deadline - self.queued_at).total_seconds())} after it was queued at "
                   f"{self.queued_at.isoformat()})" if self.queued_at else "")
        return (f"Late run: DAG {self.dag_id} run {self.run_id} is still {self.state} past its deadline "
                f"{self.deadline.isoformat()}{allowed}, late by {human_duration(self.late_seconds)}; "
                f"still waiting: {self.waiting_text()}")

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body."""
        body = asdict(self)
        body.update(event="deadline_missed", deadline=self.deadline.isoformat(),
                    queued_at=self.queued_at.isoformat() if self.queued_at else None,
                    late_seconds=round(self.late_seconds, 3), text=self.message())
        return body


def _order(task: dict[str, str]) -> tuple[int, str]:
    return WAITING_STATES.index(task["state"]), task["task"]


async def waiting_tasks(dag_id: str, run_id: str) -> list[dict[str, str]] | None:
    """The run's unfinished task instances (``{"task", "state"}``, mapped ones as ``task_<i>``), waits first;
    None when the triggerer cannot say (outside a triggerer, or its API failed)."""
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
        from asgiref.sync import sync_to_async

        states = await sync_to_async(RuntimeTaskInstance.get_task_states)(dag_id=dag_id, run_ids=[run_id])
    except Exception as exc:  # noqa: BLE001 - the alert goes out without the task list
        log.warning("Could not read the task states of run %s of DAG %s (%s)", run_id, dag_id, type(exc).__name__)
        return None
    found = [{"task": task, "state": str(state)} for task, state in (states.get(run_id) or {}).items()
             if str(state) in WAITING_STATES]
    return sorted(found, key=_order)


def webhook_target(url: str) -> str:
    """What a log line may say about the webhook: scheme and host, never user, path or query."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


async def post_webhook(url: str, payload: dict[str, Any]) -> bool:
    """POST ``payload`` as JSON; True once answered 2xx. Connection errors, 429 and 5xx are tried again
    (``WEBHOOK_ATTEMPTS`` in all), any other answer is final."""
    import aiohttp

    target, reason = webhook_target(url), ""
    for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
        try:
            async with aiohttp.ClientSession(trust_env=False,
                                             timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT)) as client:
                async with client.post(url, json=payload, allow_redirects=False) as resp:
                    status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            reason = type(exc).__name__
        else:
            if 200 <= status < 300:
                log.info("Late run %s of DAG %s: webhook at %s notified (HTTP %d)", payload.get("run_id"),
                         payload.get("dag_id"), target, status)
                return True
            reason = f"HTTP {status}"
            if status != 429 and status < 500:
                break
        if attempt < WEBHOOK_ATTEMPTS:
            await asyncio.sleep(WEBHOOK_BACKOFF * 2 ** (attempt - 1))
    log.warning("Late run %s of DAG %s: webhook at %s not notified (%s)", payload.get("run_id"),
                payload.get("dag_id"), target, reason)
    return False


async def notify_late_run(context: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Deadline Alert callback (runs in the triggerer): log the late run and notify the webhook.

    A run that already ended when its deadline passed (it failed before it; a success removes the deadline)
    is logged at INFO and not notified. Returns what was done (stored as the callback's output; no URL).
    """
    late = LateRun.from_context(context or {})
    if not late.active:
        log.info("Run %s of DAG %s ended (%s) before its deadline %s: no alert", late.run_id, late.dag_id,
                 late.state, late.deadline.isoformat())
        return {"dag_id": late.dag_id, "run_id": late.run_id, "late": False, "notified": False}
    late.waiting = await waiting_tasks(late.dag_id, late.run_id)
    log.warning("%s", late.message())
    url = setting("deadline_webhook_url", None, str)
    notified = await post_webhook(url, late.payload()) if url else False
    return {"dag_id": late.dag_id, "run_id": late.run_id, "late": True, "late_seconds": round(late.late_seconds, 3),
            "waiting": late.waiting, "notified": notified}
