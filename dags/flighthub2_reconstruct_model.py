"""
### DJI FlightHub 2: photos → 3D/2D model → archive (uses reconstruction quota)

Uploads a folder of photos (local path or object-storage URI) for **open modeling**, starts one reconstruction
per requested model type, waits (deferrable) until each model is reconstructed and zipped, downloads each
archive through a fresh download URL and archives it with a manifest. Optionally deletes the uploaded photos.

Give **Photos** or **Resource UUID**: a blank trigger uploads and starts nothing. The number of images is
checked against FlightHub 2's limits before the upload and again before the start: 2D, 3D and LiDAR
models need 5 to 20,000 images, 3DGS 10 to 4,000.

Retries are safe: the upload resumes (uploaded ETags are kept in the task state store) and the start step
re-attaches to the jobs it started instead of starting (and paying for) new ones.

Connection: `flighthub2_default` (host = base URL, password = organization key, extra `project_uuid`).
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, Param

from artifact_harvest.core.dag_defaults import FILTERS, PIPELINE_TAG, WAIT_ARGS, default_args, tags, waiting_params
from artifact_harvest.flighthub2.operators import (
    FlightHub2DeleteResourceOperator,
    FlightHub2DownloadModelOperator,
    FlightHub2StartReconstructionOperator,
    FlightHub2UploadPhotosOperator,
)
from artifact_harvest.flighthub2.sensors import FlightHub2DownloadUrlSensor, FlightHub2ModelReadySensor
from artifact_harvest.flighthub2.validation import IMAGE_RULE

OPTIONS = "Options"
#: mapped task instances are labelled "<model type> <model uuid>" (the i-th started model)
_STARTED = "ti.xcom_pull(task_ids='start_reconstruction')[ti.map_index]"
MODEL_LABEL = f"{{{{ {_STARTED}['model_type'] }}}} {{{{ {_STARTED}['model_uuid'] }}}}"
TYPE_LABELS = {"2d": "2D map (orthophoto)", "3d": "3D model (mesh)", "3dgs": "3D Gaussian splatting (3DGS)",
               "lidar": "LiDAR point cloud"}


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
    description="Upload your photos to DJI FlightHub 2, reconstruct models (uses quota) and archive them.",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    default_args=default_args(),
    tags=tags("flighthub2", PIPELINE_TAG),
    doc_md=__doc__,
    render_template_as_native_obj=True,
    user_defined_filters=FILTERS,
    params={
        "photos": Param(None, type=["null", "string"], minLength=1, title="Photos",
                        description="Folder of photos: a local path on the workers or an object-storage URI "
                        "(s3://bucket/prefix). Give this or Resource UUID. " + IMAGE_RULE + "."),
        "resource_uuid": Param(None, type=["null", "string"], minLength=1, title="Resource UUID",
                               description="An already uploaded open-modeling resource (skips the upload); "
                               "give this or Photos."),
        "model_types": Param(["3d"], type="array", title="Model types", minItems=1, uniqueItems=True,
                             items={"type": "string", "enum": list(TYPE_LABELS)}, examples=list(TYPE_LABELS),
                             values_display=TYPE_LABELS,
                             description="One reconstruction (and one archived model) per type: pick one or more."),
        "parameters": Param({}, type="object", title="Algorithm parameters", section=OPTIONS,
                            description='Per model type, e.g. {"3d": {"quality": "high"}}; sent as parameter_<type>.'),
        "resource_name": Param("airflow-upload", type="string", maxLength=255, title="Resource name", section=OPTIONS,
                               description="Display name of the uploaded resource in FlightHub 2."),
        "delete_resource_when_done": Param(False, type="boolean", title="Delete photos when done", section=OPTIONS,
                                           description="Delete the uploaded resource after every model is archived."),
        **waiting_params(60, "FlightHub 2 advises about a minute.", "P7D", "each model", minimum=0.01),
        "resubmit_if_in_doubt": Param(False, type="boolean", title="Resubmit if in doubt", section=OPTIONS,
                                      description="A start's answer was lost and its jobs cannot be matched "
                                      "exactly in FlightHub 2's running list: start again anyway, and maybe pay "
                                      "twice. Off: the run fails and says what to check (docs/exactly-once.md)."),
    },
) as dag:
    wait_args = {**WAIT_ARGS, "map_index_template": MODEL_LABEL}
    upload = FlightHub2UploadPhotosOperator(
        task_id="upload_photos", photos="{{ params.photos }}", resource_uuid="{{ params.resource_uuid }}",
        resource_name="{{ params.resource_name }}", model_types="{{ params.model_types }}",
    )
    start = FlightHub2StartReconstructionOperator(
        task_id="start_reconstruction", resource_uuid=upload.output, model_types="{{ params.model_types }}",
        parameters="{{ params.parameters }}", resubmit_if_in_doubt="{{ params.resubmit_if_in_doubt }}",
    )
    ready = FlightHub2ModelReadySensor.partial(task_id="wait_for_model", **wait_args).expand(
        model_uuid=start.output.map(_model_uuid)
    )
    url_ready = FlightHub2DownloadUrlSensor.partial(task_id="wait_for_download_url", **wait_args).expand(
        file_id=ready.output.map(_file_id)
    )
    download = FlightHub2DownloadModelOperator.partial(
        task_id="download_and_archive", map_index_template=MODEL_LABEL
    ).expand_kwargs(
        ready.output.map(_download_kwargs)
    )
    cleanup = FlightHub2DeleteResourceOperator(
        task_id="delete_resource", resource_uuid=upload.output, enabled="{{ params.delete_resource_when_done }}"
    )
    url_ready >> download >> cleanup
