"""A DAG owned by the distributed test: checks the stack runs tasks at all (no provider involved)."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task


@dag(schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), catchup=False, tags=["test"])
def harvest_probe():
    @task
    def hello() -> str:
        return "hello from a celery worker"

    hello()


harvest_probe()
