"""A run's own deadline: the ``deadline`` Param (an ISO 8601 duration after the run was queued) as an Airflow
Deadline Alert.

A ``DeadlineAlert``'s interval is fixed when the DAG is parsed; the Param is per run. So the alert's interval is 0
and its reference, :class:`RunDeadline`, reads the run itself when the scheduler (or the API server) creates the
run: ``queued_at`` plus the run conf's ``deadline`` (or the Param's default, carried in the reference). Empty or
None: no deadline row at all. The reference must be importable and registered wherever runs are created (DAG
processor, scheduler, API server, triggerer): it is in the installed package and listed in the plugin's
``deadline_references`` (``artifact_harvest.ui.plugin``). What happens when a deadline passes:
``core.late_runs.notify_late_run``. docs/deadlines.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

import pendulum
from airflow.sdk import AsyncCallback, BaseDeadlineReference, DeadlineAlert, Param

from artifact_harvest.core.late_runs import notify_late_run

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

#: the Param's name in every waiting DAG
DEADLINE_PARAM = "deadline"
#: a positive ISO 8601 duration: starts with P (no sign) and has a non-zero digit (refuses PT0S, -PT5S)
POSITIVE_DURATION = r"^P(?=.*[1-9])"


def deadline_seconds(value: Any) -> float | None:
    """The deadline in seconds, or None for no deadline (None, empty or blank text).

    Raises ``ValueError`` for anything else than a positive ISO 8601 duration (``PT30M``, ``P1D``).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 duration such as PT30M or P1D, got {value!r}")
    try:
        parsed = pendulum.parse(value.strip())
    except (ValueError, TypeError):  # pendulum's ParserError is a ValueError
        parsed = None
    if not isinstance(parsed, pendulum.Duration) or parsed.total_seconds() <= 0:
        raise ValueError(f"expected a positive ISO 8601 duration such as PT30M or P1D, got {value!r}")
    return parsed.total_seconds()


def deadline_param(default: str | None = None, section: str | None = None) -> Param:
    """The optional ``deadline``: a positive ISO 8601 duration after the run was queued; empty: none.

    The form shows Airflow's duration box (``format: duration``; an emptied box sends null). A run's conf may
    send null; ``""``, numbers, zero and negative durations are refused when the run is triggered.
    """
    return Param(default, type=["null", "string"], format="duration", pattern=POSITIVE_DURATION,
                 title="Deadline", section=section,
                 description="Optional: alert when the run is still going this long after it was queued, "
                 "e.g. PT2H (2 hours) or P1D (1 day). The alert is a log line in the triggerer, the "
                 "[artifact_harvest] deadline_webhook_url when set, and the SLA line of the Artifacts page; "
                 "the run goes on. Empty: no deadline.")


@dataclass(frozen=True)
class RunDeadline(BaseDeadlineReference):
    """``queued_at`` + the run's ``deadline`` (its conf, else ``default``); None (no deadline) when empty.

    Evaluated once, when the run is created. A run without ``queued_at`` (``dag.test``) counts from its
    ``start_date``, then its ``run_after``. A value that is not a positive duration (a conf the Param did not
    check) logs a warning and sets no deadline: creating the run never fails because of it.
    """

    param: str = DEADLINE_PARAM
    default: str | None = None

    required_kwargs: ClassVar[set[str]] = {"dag_id", "run_id"}

    def _evaluate_with(self, *, session: Session, **kwargs: Any) -> datetime | None:
        from airflow.models import DagRun
        from sqlalchemy import select

        dag_id, run_id = kwargs["dag_id"], kwargs["run_id"]
        row = session.execute(
            select(DagRun.conf, DagRun.queued_at, DagRun.start_date, DagRun.run_after)
            .where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
        ).one_or_none()
        if row is None:
            log.warning("No run %s of DAG %s: no deadline", run_id, dag_id)
            return None
        return self.deadline_of(row.conf, row.queued_at or row.start_date or row.run_after, dag_id, run_id)

    def deadline_of(self, conf: dict[str, Any] | None, since: datetime | None, dag_id: str = "",
                    run_id: str = "") -> datetime | None:
        """The deadline of a run with ``conf`` queued at ``since`` (now when unknown), or None."""
        conf = conf or {}
        value = conf[self.param] if self.param in conf else self.default
        try:
            seconds = deadline_seconds(value)
        except ValueError as exc:
            log.warning("Run %s of DAG %s: %s %s; no deadline", run_id, dag_id, self.param, exc)
            return None
        if seconds is None:
            return None
        return (since or datetime.now(timezone.utc)) + timedelta(seconds=seconds)

    def serialize_reference(self) -> dict[str, Any]:
        return {**super().serialize_reference(), "param": self.param, "default": self.default}

    @classmethod
    def deserialize_reference(cls, reference_data: dict[str, Any]) -> RunDeadline:
        return cls(param=reference_data.get("param", DEADLINE_PARAM), default=reference_data.get("default"))


def late_run_alert(default: str | None = None) -> DeadlineAlert:
    """The DAG's ``deadline=``: :class:`RunDeadline` with interval 0, calling ``notify_late_run`` in the
    triggerer when the deadline passes while the run is not done."""
    return DeadlineAlert(reference=RunDeadline(default=default), interval=timedelta(0),
                         callback=AsyncCallback(notify_late_run), name="run deadline (the deadline param)")
