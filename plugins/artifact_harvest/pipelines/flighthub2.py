"""The DJI FlightHub 2 pipelines: reconstruct from photos, download one model, archive the project's new models
day by day (builders only)."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, task

from artifact_harvest.core.approval import PARAM as APPROVAL, approval_param, approve_before
from artifact_harvest.core.dag_defaults import WAIT_ARGS, pipeline_dag, waiting_params
from artifact_harvest.core.errors import InvalidParameterError
from artifact_harvest.core.intervals import advance_watermark, sweep_window
from artifact_harvest.flighthub2.approval import reconstruction_summary
from artifact_harvest.flighthub2.operators import (
    FlightHub2DeleteResourceOperator,
    FlightHub2DownloadModelOperator,
    FlightHub2ListModelsOperator,
    FlightHub2StartReconstructionOperator,
    FlightHub2UploadPhotosOperator,
)
from artifact_harvest.flighthub2.sensors import FlightHub2DownloadUrlSensor, FlightHub2ModelReadySensor
from artifact_harvest.flighthub2.validation import IMAGE_RULE

PROVIDER = "flighthub2"
OPTIONS = "Options"
#: mapped task instances are labelled "<model type> <model uuid>" (the i-th started model)
_STARTED = "ti.xcom_pull(task_ids='start_reconstruction')[ti.map_index]"
MODEL_LABEL = f"{{{{ {_STARTED}['model_type'] }}}} {{{{ {_STARTED}['model_uuid'] }}}}"
TYPE_LABELS = {"2d": "2D map (orthophoto)", "3d": "3D model (mesh)", "3dgs": "3D Gaussian splatting (3DGS)",
               "lidar": "LiDAR point cloud"}
#: flighthub2_download_model: the given file id, else the one the open model was zipped to
FILE_ID = "{{ params.file_id or ti.xcom_pull(task_ids='wait_for_model')['file_id'] }}"

RECONSTRUCT_DOC = """
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

DOWNLOAD_DOC = """
### DJI FlightHub 2: download one model → archive

Give either `model_uuid` (an open-modeling model: waits until it is reconstructed and zipped) or `file_id`
(a model-management file id). Then waits (deferrable) until the download URL is ready, downloads through a
fresh URL and archives the file with a manifest. Already archived models are not downloaded again.

Open question in FlightHub 2's docs: which `file_id` an open model's archive has. This pipeline uses the
model's `zip_file_key` (configurable on `FlightHub2ModelReadySensor(file_id_field=...)`).
"""

SWEEP_DOC = """
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

FH2_POLL_HINT = "FlightHub 2 advises about a minute."


def _model_uuid(started: dict) -> str:
    return started["model_uuid"]


def _file_id(model: dict) -> str:
    return model["file_id"]


def _download_kwargs(ready: dict) -> dict:
    return {
        "file_id": ready["file_id"],
        "artifact_key": ready["model_uuid"],
        "source": {k: ready.get(k) for k in ("model_uuid", "resource_uuid", "model_type", "file_id")},
    }


@task.branch
def choose(params: dict) -> str:
    """An open model must be reconstructed and zipped first; a file id is only waited on for its URL."""
    if params.get("model_uuid"):
        return "wait_for_model"
    if params.get("file_id"):
        return "wait_for_download_url"
    raise InvalidParameterError("flighthub2", "model_uuid", "give model_uuid or file_id")


def build_flighthub2_reconstruct_model() -> DAG:
    """``flighthub2_reconstruct_model``: upload → start → wait for each model and its URL → archive → clean up."""
    with pipeline_dag(
        "flighthub2_reconstruct_model", PROVIDER,
        description="Upload your photos to DJI FlightHub 2, reconstruct models (uses quota) and archive them.",
        doc_md=RECONSTRUCT_DOC,
        render_template_as_native_obj=True,
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
                                 description="One reconstruction (and one archived model) per type: pick one or "
                                 "more."),
            "parameters": Param({}, type="object", title="Algorithm parameters", section=OPTIONS,
                                description='Per model type, e.g. {"3d": {"quality": "high"}}; sent as '
                                "parameter_<type>."),
            "resource_name": Param("airflow-upload", type="string", maxLength=255, title="Resource name",
                                   section=OPTIONS, description="Display name of the uploaded resource in "
                                   "FlightHub 2."),
            "delete_resource_when_done": Param(False, type="boolean", title="Delete photos when done",
                                               section=OPTIONS, description="Delete the uploaded resource after "
                                               "every model is archived."),
            **waiting_params(60, FH2_POLL_HINT, "P7D", "each model", minimum=0.01),
            "resubmit_if_in_doubt": Param(False, type="boolean", title="Resubmit if in doubt", section=OPTIONS,
                                          description="A start's answer was lost and its jobs cannot be matched "
                                          "exactly in FlightHub 2's running list: start again anyway, and maybe "
                                          "pay twice. Off: the run fails and says what to check "
                                          "(docs/exactly-once.md)."),
            APPROVAL: approval_param(),
        },
    ) as dag:
        wait_args = {**WAIT_ARGS, "map_index_template": MODEL_LABEL}
        upload = FlightHub2UploadPhotosOperator(
            task_id="upload_photos", photos="{{ params.photos }}", resource_uuid="{{ params.resource_uuid }}",
            resource_name="{{ params.resource_name }}", model_types="{{ params.model_types }}",
        )
        approve_before(upload, reconstruction_summary, "Start FlightHub 2 reconstruction ({{ params.model_types "
                       "| join(', ') }})? It uses image quota.")
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
        ).expand_kwargs(ready.output.map(_download_kwargs))
        cleanup = FlightHub2DeleteResourceOperator(
            task_id="delete_resource", resource_uuid=upload.output, enabled="{{ params.delete_resource_when_done }}"
        )
        url_ready >> download >> cleanup
    return dag


def build_flighthub2_download_model() -> DAG:
    """``flighthub2_download_model``: by open-model UUID (wait until zipped) or file id → wait for the URL →
    archive."""
    with pipeline_dag(
        "flighthub2_download_model", PROVIDER,
        description="Download one DJI FlightHub 2 model (by open-model UUID or file id) and archive it.",
        doc_md=DOWNLOAD_DOC,
        params={
            "model_uuid": Param(None, type=["null", "string"], minLength=1, title="Open model UUID",
                                description="An open-modeling model (model_uuid from start reconstruction). Give "
                                "this or File ID."),
            "file_id": Param(None, type=["null", "string"], minLength=1, title="File ID",
                             description="A model-management model file id (used when Open model UUID is empty)."),
            **waiting_params(60, FH2_POLL_HINT, "P1D", "the model and its download URL", minimum=0.01),
        },
    ) as dag:
        ready = FlightHub2ModelReadySensor(task_id="wait_for_model", model_uuid="{{ params.model_uuid }}",
                                           **WAIT_ARGS)
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
    return dag


def build_flighthub2_archive_project_models() -> DAG:
    """``flighthub2_archive_project_models``: daily, archive the project's models created in the run's window."""
    with pipeline_dag(
        "flighthub2_archive_project_models", PROVIDER,
        description="Daily: archive the FlightHub 2 project's models created on the run's day, and on any day "
        "missed since the last success.",
        # a real daily interval (plain "@daily" is a trigger timetable in Airflow 3: start == end)
        schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
        max_active_runs=1,  # one watermark: runs follow each other (backfills have their own limit)
        doc_md=SWEEP_DOC,
        params=waiting_params(60, FH2_POLL_HINT + " The run archives the models created in its window: its data "
                              "interval (a scheduled run the previous UTC day), reaching back to the last run that "
                              "succeeded.", "P1D", "each model's download URL", minimum=0.01),
    ) as dag:
        window = sweep_window(PROVIDER, fallback=timedelta(days=1))
        models = FlightHub2ListModelsOperator(
            task_id="list_new_models", created_from="{{ ti.xcom_pull(task_ids='sweep_window')['start'] }}",
            created_to="{{ ti.xcom_pull(task_ids='sweep_window')['end'] }}")
        window >> models
        url_ready = FlightHub2DownloadUrlSensor.partial(
            task_id="wait_for_download_url", map_index_template="file {{ task.file_id }}", **WAIT_ARGS,
        ).expand(file_id=models.output.map(_file_id))
        download = FlightHub2DownloadModelOperator.partial(
            task_id="download_and_archive", map_index_template="file {{ task.file_id }}"
        ).expand_kwargs(models.output)
        url_ready >> download >> advance_watermark(PROVIDER, window)
    return dag
