"""
### DJI FlightHub 2: archive the project's new models, day by day

Lists every model of the project (model management, `GET /openapi/v0.1/model`) whose `create_at` falls in the
run's window and that is not archived yet, waits for each download URL, downloads and archives it. Archived
models are skipped, so reruns and overlapping windows archive nothing twice.

**Which days a run covers** (`sweep_window`; details in docs/sweeps.md). The run scheduled at 00:00 UTC on
2 March covers 1 March (data interval [1 March 00:00, 2 March 00:00) UTC), reaching back to the end of the last
run that succeeded (`advance_watermark`) when that is earlier: after an outage, a pause or failed runs, nothing
is skipped. A backfill run (`airflow backfill create`) covers exactly its day. A manual run with a logical date
covers the day before that date, one without covers the 24 hours before it was triggered; both also reach
back to the watermark.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, CronDataIntervalTimetable, Param

from artifact_harvest.core.dag_defaults import PIPELINE_TAG, default_args, tags
from artifact_harvest.core.intervals import advance_watermark, sweep_window
from artifact_harvest.flighthub2.operators import FlightHub2DownloadModelOperator, FlightHub2ListModelsOperator
from artifact_harvest.flighthub2.sensors import FlightHub2DownloadUrlSensor


def _file_id(model: dict) -> str:
    return model["file_id"]


with DAG(
    dag_id="flighthub2_archive_project_models",
    description="Daily: archive the FlightHub 2 project's models created on the run's day, and on any day "
    "missed since the last success.",
    # a real daily interval (plain "@daily" is a trigger timetable in Airflow 3: start == end)
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,  # one watermark: runs follow each other (backfills have their own limit)
    default_args=default_args(),
    tags=tags("flighthub2", PIPELINE_TAG),
    doc_md=__doc__,
    params={
        "poll_interval": Param(60, type="number", minimum=0.01, title="Poll interval (seconds)",
                               description="Seconds between download-URL polls while a model is compressed. "
                               "The run archives the models created in its window: its data interval (a scheduled "
                               "run the previous UTC day), reaching back to the last run that succeeded."),
    },
) as dag:
    window = sweep_window("flighthub2", fallback=timedelta(days=1))
    models = FlightHub2ListModelsOperator(
        task_id="list_new_models", created_from="{{ ti.xcom_pull(task_ids='sweep_window')['start'] }}",
        created_to="{{ ti.xcom_pull(task_ids='sweep_window')['end'] }}")
    window >> models
    url_ready = FlightHub2DownloadUrlSensor.partial(
        task_id="wait_for_download_url", poll_interval="{{ params.poll_interval }}", wait_timeout=24 * 3600,
        map_index_template="file {{ task.file_id }}",
    ).expand(file_id=models.output.map(_file_id))
    download = FlightHub2DownloadModelOperator.partial(
        task_id="download_and_archive", map_index_template="file {{ task.file_id }}"
    ).expand_kwargs(models.output)
    url_ready >> download >> advance_watermark("flighthub2", window)
