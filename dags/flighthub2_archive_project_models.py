"""
### DJI FlightHub 2: archive the project's new models, day by day

Lists every model of the project (model management, `GET /openapi/v0.1/model`) whose `create_at` falls in the
run's data interval and that is not archived yet, waits for each download URL, downloads and archives it.
Keyed on the data interval: `airflow backfill create` over past days archives exactly those days' models, and
re-running a day archives nothing twice.

**Which day a run covers.** The run scheduled at 00:00 UTC on 2 March archives the models created on 1 March
(data interval [1 March 00:00, 2 March 00:00) UTC). A manual run with a logical date covers the day before that
date; one without a logical date covers the 24 hours before the moment it was triggered.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, CronDataIntervalTimetable, Param

from artifact_harvest.core.dag_defaults import PIPELINE_TAG, default_args, tags
from artifact_harvest.flighthub2.operators import FlightHub2DownloadModelOperator, FlightHub2ListModelsOperator
from artifact_harvest.flighthub2.sensors import FlightHub2DownloadUrlSensor


def _file_id(model: dict) -> str:
    return model["file_id"]


with DAG(
    dag_id="flighthub2_archive_project_models",
    description="Daily: archive the FlightHub 2 project's models created on the run's day (its data interval).",
    # a real daily interval (plain "@daily" is a trigger timetable in Airflow 3: start == end)
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=4,
    default_args=default_args(),
    tags=tags("flighthub2", PIPELINE_TAG),
    doc_md=__doc__,
    params={
        "poll_interval": Param(60, type="number", minimum=0.01, title="Poll interval (seconds)",
                               description="Seconds between download-URL polls while a model is compressed. "
                               "The run archives the models created in its data interval: a scheduled run the "
                               "previous UTC day, a manual run the 24 hours before its logical date (or before "
                               "now)."),
    },
) as dag:
    models = FlightHub2ListModelsOperator(task_id="list_new_models")  # the run's data interval
    url_ready = FlightHub2DownloadUrlSensor.partial(
        task_id="wait_for_download_url", poll_interval="{{ params.poll_interval }}", wait_timeout=24 * 3600,
        map_index_template="file {{ task.file_id }}",
    ).expand(file_id=models.output.map(_file_id))
    download = FlightHub2DownloadModelOperator.partial(
        task_id="download_and_archive", map_index_template="file {{ task.file_id }}"
    ).expand_kwargs(models.output)
    url_ready >> download
