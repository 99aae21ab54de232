"""Hourly sweep: archive every MiniMax video and speech file created in the data interval."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, CronTriggerTimetable, task

from artifact_harvest.core.dag_defaults import PIPELINE_TAG, default_args, tags
from artifact_harvest.core.intervals import advance_watermark, sweep_window
from artifact_harvest.minimax.operators import MiniMaxDownloadOperator, unarchived_files_between

with DAG(
    dag_id="minimax_archive_new_files",
    description="Hourly: archive the MiniMax files created in the run's hour, and in any hour missed since "
    "the last success.",
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
falls in the run's window and are not archived yet, and archives each (one mapped task per file). Archived
files are skipped, so reruns and overlapping windows archive nothing twice.

**Which hours a run covers** (`sweep_window`; details in docs/sweeps.md). The run scheduled at 10:00 UTC
covers 09:00 to 10:00 (its data interval), reaching back to the end of the last run that succeeded
(`advance_watermark`) when that is earlier: after an outage, a pause or failed runs, nothing is skipped. A
backfill run covers exactly its hour. A manual run with a logical date covers the hour before that date, one
without covers the hour before it was triggered; both also reach back to the watermark.
""",
) as dag:

    window = sweep_window("minimax", fallback=timedelta(hours=1))

    @task
    def find_new_files(window: dict[str, str]) -> list[dict]:
        return unarchived_files_between(datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"]))

    archived = MiniMaxDownloadOperator.partial(
        task_id="download_and_archive", map_index_template="file {{ task.artifact_key }}"
    ).expand_kwargs(find_new_files(window))
    archived >> advance_watermark("minimax", window)
