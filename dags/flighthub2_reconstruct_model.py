"""
### DJI FlightHub 2: photos → 3D/2D model → archive

Uploads a folder of photos (local path or object-storage URI) for **open modeling**, starts one reconstruction
per requested model type, waits (deferrable) until each model is reconstructed and zipped, downloads each
archive through a fresh download URL and archives it with a manifest. Optionally deletes the uploaded photos.

Retries are safe: the upload resumes (uploaded ETags are kept in the task state store) and the start step
re-attaches to the jobs it started instead of starting (and paying for) new ones.

Connection: `flighthub2_default` (host = base URL, password = organization key, extra `project_uuid`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from airflow.sdk import DAG, Param

from artifact_harvest.core.dag_defaults import PIPELINE_TAG, default_args, tags
from artifact_harvest.flighthub2.operators import (
    FlightHub2DeleteResourceOperator,
    FlightHub2DownloadModelOperator,
    FlightHub2StartReconstructionOperator,
    FlightHub2UploadPhotosOperator,
)
from artifact_harvest.flighthub2.sensors import FlightHub2DownloadUrlSensor, FlightHub2ModelReadySensor

SAMPLE_PHOTOS = str(Path(__file__).resolve().parents[1] / "include" / "sample_data" / "flighthub2_photos")


def _model_uuid(started: dict) -> str:
    return started["model_uuid"]


def _file_id(ready: dict) -> str:
    return ready["file_id"]


def _download_kwargs(ready: dict) -> dict:
    return {
        "file_id": ready["file_id"],
        "artifact_key": ready["model_uuid"],
        "source": {k: ready.get(k) for k in ("model_uuid", "resource_uuid", "model_type", "file_id")},
    }


with DAG(
    dag_id="flighthub2_reconstruct_model",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    default_args=default_args(),
    tags=tags("flighthub2", PIPELINE_TAG),
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params={
        "photos": Param(SAMPLE_PHOTOS, type=["null", "string"], title="Photos",
                        description="Folder of photos: a local path or an object-storage URI (s3://bucket/prefix). "
                        "Ignored when resource_uuid is set."),
        "resource_uuid": Param(None, type=["null", "string"], title="Resource UUID",
                               description="An already uploaded open-modeling resource (skips the upload)."),
        "model_types": Param(["3d"], type="array", title="Model types", minItems=1, uniqueItems=True,
                             items={"type": "string", "enum": ["2d", "3d", "3dgs", "lidar"]},
                             description="One reconstruction (and one archived model) per type."),
        "parameters": Param({}, type="object", title="Algorithm parameters",
                            description='Per model type, e.g. {"3d": {"quality": "high"}}; sent as parameter_<type>.'),
        "resource_name": Param("airflow-upload", type="string", maxLength=255, title="Resource name",
                               description="Display name of the uploaded resource in FlightHub 2."),
        "delete_resource_when_done": Param(False, type="boolean", title="Delete photos when done",
                                           description="Delete the uploaded resource after every model is archived."),
        "poll_interval": Param(60, type="number", minimum=0.01, title="Poll interval (s)",
                               description="Seconds between status polls while waiting."),
        "timeout": Param(7 * 24 * 3600, type="number", minimum=1, title="Timeout (s)",
                         description="Give up waiting for a model after this many seconds."),
    },
) as dag:
    wait_args = {"poll_interval": "{{ params.poll_interval }}", "wait_timeout": "{{ params.timeout }}"}
    upload = FlightHub2UploadPhotosOperator(
        task_id="upload_photos", photos="{{ params.photos }}", resource_uuid="{{ params.resource_uuid }}",
        resource_name="{{ params.resource_name }}",
    )
    start = FlightHub2StartReconstructionOperator(
        task_id="start_reconstruction", resource_uuid=upload.output, model_types="{{ params.model_types }}",
        parameters="{{ params.parameters }}",
    )
    ready = FlightHub2ModelReadySensor.partial(task_id="wait_for_model", **wait_args).expand(
        model_uuid=start.output.map(_model_uuid)
    )
    url_ready = FlightHub2DownloadUrlSensor.partial(task_id="wait_for_download_url", **wait_args).expand(
        file_id=ready.output.map(_file_id)
    )
    download = FlightHub2DownloadModelOperator.partial(task_id="download_and_archive").expand_kwargs(
        ready.output.map(_download_kwargs)
    )
    cleanup = FlightHub2DeleteResourceOperator(
        task_id="delete_resource", resource_uuid=upload.output, enabled="{{ params.delete_resource_when_done }}"
    )
    url_ready >> download >> cleanup
