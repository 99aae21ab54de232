"""The period a sweep run covers, and the watermark that keeps sweeps from skipping anything.

A sweep run covers its data interval (or, for a run triggered without a logical date, ``fallback`` up to the
moment it was triggered), widened back to the sweep's watermark: the end of what earlier runs covered and
archived in full. So after a scheduler outage, a pause or failed runs, the next run also covers every interval
missed since the last run that succeeded. Backfill runs cover exactly their interval and leave the watermark
alone. The watermark lives in Airflow's asset state store, on the provider's Asset, under a key per DAG;
docs/sweeps.md says what each kind of run covers.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Asset, get_current_context, task

from artifact_harvest.core.assets import asset_for

log = logging.getLogger(__name__)

#: the run type of a run made by ``airflow backfill create`` / the UI's backfill dialog
BACKFILL = "backfill"


def run_interval(context: Any, fallback: timedelta) -> tuple[datetime, datetime]:
    """The run's own data interval; without one (triggered with no logical date), ``fallback`` before it."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None:
        return start, end
    end = context["dag_run"].run_after
    return end - fallback, end


def widen(start: datetime, end: datetime, covered_until: datetime | None, run_type: str) -> tuple[datetime, datetime]:
    """``[start, end)`` reaching back to ``covered_until`` when that is earlier; a backfill never widens."""
    if run_type == BACKFILL or covered_until is None or covered_until >= start:
        return start, end
    return covered_until, end


def watermark_key(dag_id: str) -> str:
    return f"sweep_covered_until/{dag_id}"


def _run_type(context: Any) -> str:
    return str(getattr(context["dag_run"].run_type, "value", context["dag_run"].run_type))


def sweep_window(provider: str, fallback: timedelta) -> Any:
    """Task ``sweep_window``: ``{"start", "end"}`` (ISO 8601) the sweep lists, widened back to the watermark."""
    asset = asset_for(provider)

    @task(task_id="sweep_window", inlets=[asset])
    def window() -> dict[str, str]:
        context = get_current_context()
        start, end = run_interval(context, fallback)
        saved = _store(context, asset).get(watermark_key(context["dag"].dag_id))
        covered = datetime.fromisoformat(saved) if saved else None
        wide_start, _ = widen(start, end, covered, _run_type(context))
        if wide_start < start:
            log.warning("the last sweep that succeeded covered up to %s: this run also covers the %s since, "
                        "so [%s, %s) in all", wide_start.isoformat(), start - wide_start, wide_start.isoformat(),
                        end.isoformat())
        log.info("sweeping [%s, %s) (%s run; watermark %s)", wide_start.isoformat(), end.isoformat(),
                 _run_type(context), saved or "not set yet")
        return {"start": wide_start.isoformat(), "end": end.isoformat()}

    return window()


def advance_watermark(provider: str, window: Any) -> Any:
    """Task ``advance_watermark``: once everything upstream succeeded (or had nothing to do), the watermark
    moves to the window's end; never backwards, and never for a backfill."""
    asset = asset_for(provider)

    @task(task_id="advance_watermark", inlets=[asset], trigger_rule="none_failed")
    def advance(window: dict[str, str]) -> str | None:
        context = get_current_context()
        if _run_type(context) == BACKFILL:
            log.info("a backfill run covers exactly its interval and leaves the watermark alone")
            return None
        store, key = _store(context, asset), watermark_key(context["dag"].dag_id)
        saved, end = store.get(key), datetime.fromisoformat(window["end"])
        if saved and datetime.fromisoformat(saved) >= end:
            log.info("the watermark is already at %s", saved)
            return saved
        store.set(key, end.isoformat())
        log.info("watermark %s -> %s", saved or "not set", end.isoformat())
        return end.isoformat()

    return advance(window)


def _store(context: Any, asset: Asset) -> Any:
    return context["asset_state_store"][asset]
