"""Hourly sweep: archive every MiniMax video and speech file created in the data interval."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, CronTriggerTimetable, get_current_context, task

from artifact_harvest.core.dag_defaults import PIPELINE_TAG, default_args, tags
from artifact_harvest.core.intervals import run_interval
from artifact_harvest.minimax.operators import MiniMaxDownloadOperator, unarchived_files_between

with DAG(
    dag_id="minimax_archive_new_files",
    description="Hourly: archive the MiniMax files created in the run's hour [data_interval_start, end).",
    # @hourly with a one-hour data interval ending at each run (a bare "@hourly" has an empty interval in 3.x)
    schedule=CronTriggerTimetable("@hourly", timezone="UTC", interval=timedelta(hours=1)),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=tags("minimax", PIPELINE_TAG),
    doc_md="""
### Sweep new MiniMax outputs (hourly)

Lists `video_generation` and `t2a_async` files (`files/list` per purpose), keeps those whose `created_at`
falls in `[data_interval_start, data_interval_end)` and are not archived yet, and archives each (one mapped
task per file). Keyed on the data interval, so reruns and backfills (`airflow backfill create`) archive
nothing twice.

**Which hour a run covers.** The run scheduled at 10:00 UTC archives the files created from 09:00 to 10:00
(its data interval). A manual run with a logical date covers the hour before that date; one without a logical
date covers the hour before the moment it was triggered.
""",
) as dag:

    @task
    def find_new_files() -> list[dict]:
        return unarchived_files_between(*run_interval(get_current_context(), fallback=timedelta(hours=1)))

    MiniMaxDownloadOperator.partial(
        task_id="download_and_archive", map_index_template="file {{ task.artifact_key }}"
    ).expand_kwargs(find_new_files())
