"""
### DJI FlightHub 2: download one model → archive

Give either `model_uuid` (an open-modeling model: waits until it is reconstructed and zipped) or `file_id`
(a model-management file id). Then waits (deferrable) until the download URL is ready, downloads through a
fresh URL and archives the file with a manifest. Already archived models are not downloaded again.

Open question in FlightHub 2's docs: which `file_id` an open model's archive has. This pipeline uses the
model's `zip_file_key` (configurable on `FlightHub2ModelReadySensor(file_id_field=...)`).
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, Param, task

from artifact_harvest.core.dag_defaults import FILTERS, PIPELINE_TAG, WAIT_ARGS, default_args, tags, waiting_params
from artifact_harvest.core.errors import InvalidParameterError
from artifact_harvest.flighthub2.operators import FlightHub2DownloadModelOperator
from artifact_harvest.flighthub2.sensors import FlightHub2DownloadUrlSensor, FlightHub2ModelReadySensor

FILE_ID = "{{ params.file_id or ti.xcom_pull(task_ids='wait_for_model')['file_id'] }}"

with DAG(
    dag_id="flighthub2_download_model",
    description="Download one DJI FlightHub 2 model (by open-model UUID or file id) and archive it.",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    default_args=default_args(),
    tags=tags("flighthub2", PIPELINE_TAG),
    doc_md=__doc__,
    user_defined_filters=FILTERS,
    params={
        "model_uuid": Param(None, type=["null", "string"], minLength=1, title="Open model UUID",
                            description="An open-modeling model (model_uuid from start reconstruction). Give this "
                            "or File ID."),
        "file_id": Param(None, type=["null", "string"], minLength=1, title="File ID",
                         description="A model-management model file id (used when Open model UUID is empty)."),
        **waiting_params(60, "FlightHub 2 advises about a minute.", "P1D", "the model and its download URL",
                         minimum=0.01),
    },
) as dag:

    @task.branch
    def choose(params: dict) -> str:
        """An open model must be reconstructed and zipped first; a file id is only waited on for its URL."""
        if params.get("model_uuid"):
            return "wait_for_model"
        if params.get("file_id"):
            return "wait_for_download_url"
        raise InvalidParameterError("flighthub2", "model_uuid", "give model_uuid or file_id")

    ready = FlightHub2ModelReadySensor(task_id="wait_for_model", model_uuid="{{ params.model_uuid }}", **WAIT_ARGS)
    url_ready = FlightHub2DownloadUrlSensor(
        task_id="wait_for_download_url", file_id=FILE_ID, trigger_rule="none_failed_min_one_success", **WAIT_ARGS
    )
    download = FlightHub2DownloadModelOperator(
        task_id="download_and_archive",
        file_id=FILE_ID,
        artifact_key="{{ params.model_uuid or 'model-' ~ params.file_id }}",
        source={"model_uuid": "{{ params.model_uuid or '' }}", "file_id": FILE_ID},
    )
    choose() >> [ready, url_ready]
    ready >> url_ready >> download
