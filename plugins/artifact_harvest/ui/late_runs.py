"""The Artifacts page's SLA line: runs still queued or running past a deadline, read from the metadata DB.

Every Deadline Alert counts (the waiting DAGs' ``deadline`` Param, ``core.deadlines``, and any other a DAG
declares): a deadline row whose time has passed while its run is not done, whether or not the scheduler has
already called its callback (``missed``). Only DAGs the caller may read are listed. docs/deadlines.md.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from artifact_harvest.core.late_runs import ACTIVE_RUN_STATES, WAITING_STATES

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: at most this many late runs in one answer (the oldest deadlines first)
MAX_LATE_RUNS = 100


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def late_runs(session: Session, readable: set[str], *, dag_id: str | None = None, run_id: str | None = None,
              now: datetime | None = None, limit: int = MAX_LATE_RUNS) -> list[dict[str, Any]]:
    """``[{dag_id, run_id, state, queued_at, deadline, late_seconds, alerted, waiting}]``, most overdue first;
    ``waiting`` lists the run's unfinished task instances (``task``, ``state``), waits first."""
    from airflow.models import DagRun, TaskInstance
    from airflow.models.deadline import Deadline

    now = now or datetime.now(timezone.utc)
    dag_ids = readable if dag_id is None else readable & {dag_id}
    if not dag_ids:
        return []
    query = (
        select(DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.queued_at, Deadline.deadline_time, Deadline.missed)
        .join(DagRun, Deadline.dagrun_id == DagRun.id)
        .where(Deadline.deadline_time < now, DagRun.state.in_(ACTIVE_RUN_STATES), DagRun.dag_id.in_(dag_ids))
        .order_by(Deadline.deadline_time)
        .limit(limit)
    )
    if run_id is not None:
        query = query.where(DagRun.run_id == run_id)
    rows = session.execute(query).all()
    if not rows:
        return []
    waiting: dict[tuple[str, str], list[dict[str, str]]] = {}
    tis = session.execute(
        select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index,
               TaskInstance.state)
        .where(TaskInstance.dag_id.in_({r.dag_id for r in rows}), TaskInstance.run_id.in_({r.run_id for r in rows}),
               TaskInstance.state.in_(WAITING_STATES))
        .order_by(TaskInstance.task_id, TaskInstance.map_index)
    ).all()
    for ti in tis:
        task = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        waiting.setdefault((ti.dag_id, ti.run_id), []).append({"task": task, "state": str(ti.state)})
    result = []
    for row in rows:
        deadline = _aware(row.deadline_time)
        queued = _aware(row.queued_at)
        tasks = sorted(waiting.get((row.dag_id, row.run_id), []), key=lambda t: WAITING_STATES.index(t["state"]))
        result.append({
            "dag_id": row.dag_id, "run_id": row.run_id, "state": str(row.state),
            "queued_at": queued.isoformat() if queued else None, "deadline": deadline.isoformat(),
            "late_seconds": round((now - deadline).total_seconds(), 3), "alerted": bool(row.missed),
            "waiting": tasks,
        })
    return result
