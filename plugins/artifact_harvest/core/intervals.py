"""The period a sweep run covers: its data interval, or, for a run that has none, the period before it.

Scheduled runs and backfills have a data interval and sweep exactly it, so reruns archive nothing twice.
A run triggered from the UI or the REST API without a logical date has no data interval in Airflow 3 (the
template variables are undefined): it covers ``fallback`` up to the moment it was triggered.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any


def run_interval(context: Any, fallback: timedelta) -> tuple[datetime, datetime]:
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None:
        return start, end
    end = context["dag_run"].run_after
    return end - fallback, end
