"""The Baidu Qianfan pipeline: export a model version and archive the package (builder only)."""

from __future__ import annotations

from airflow.sdk import DAG, Param

from artifact_harvest.core.approval import PARAM as APPROVAL, approval_param, approve_before
from artifact_harvest.core.dag_defaults import WAIT_ARGS, pipeline_dag, waiting_params
from artifact_harvest.qianfan.approval import export_summary
from artifact_harvest.qianfan.operators import QianfanCreateModelExportOperator, QianfanDownloadExportOperator
from artifact_harvest.qianfan.sensors import QianfanModelExportSensor
from artifact_harvest.qianfan.validation import MODEL_VERSION_PATTERN, MODEL_VERSION_RULE

PROVIDER = "qianfan"
EXPORT_ID = "{{ ti.xcom_pull(task_ids='create_export')['exportId'] }}"
LISTED_BEFORE = "{{ ti.xcom_pull(task_ids='create_export')['listedBefore'] }}"

EXPORT_DOC = f"""
### Export a Baidu Qianfan model version

1. **create_export**: `CreateModelExportTask` for the model version, unless it already has an export:
   a finished one is reused (tick *Force a new export* to override), a running one is attached to. A retried
   task never creates a second export.
2. **wait_for_export**: deferrable wait on `DescribeModelExportTask` until `Done`; `Fail`, or an export that
   disappears after it was running, fails the run; an export replaced by a newer one of the same version
   (another run's *Force a new export*) is followed, and the newer one is archived.
3. **download_and_archive**: fetches a fresh download URL, streams the `.tar` (resumable, free-space check,
   md5 and size checked against Qianfan's) and archives it under `qianfan/<export id>/` with a manifest.

The model version id is required. {MODEL_VERSION_RULE}.

Connection `qianfan_default`: host = base URL, login = AK, password = SK (bce-auth-v1 signing).
"""


def build_qianfan_export_model() -> DAG:
    """``qianfan_export_model``: create or reuse an export → wait → download → archive."""
    with pipeline_dag(
        "qianfan_export_model", PROVIDER,
        description="Export one Baidu Qianfan model version (amv-…) and archive the .tar package.",
        doc_md=EXPORT_DOC,
        render_template_as_native_obj=True,
        params={
            "model_version_id": Param(
                type="string", pattern=MODEL_VERSION_PATTERN, title="Model version ID",
                description=f"Required. {MODEL_VERSION_RULE}.",
            ),
            "force_new_export": Param(
                False, type="boolean", title="Force a new export",
                description="Create a new export even when the version already has a finished one.",
            ),
            **waiting_params(30, "Each check is one DescribeModelExportTask call.", "PT6H", "the export"),
            APPROVAL: approval_param(),
        },
    ) as dag:
        create = QianfanCreateModelExportOperator(
            task_id="create_export",
            model_id="{{ params.model_version_id }}",
            force_new_export="{{ params.force_new_export }}",
        )
        wait = QianfanModelExportSensor(
            task_id="wait_for_export",
            model_id="{{ params.model_version_id }}",
            export_id=EXPORT_ID,
            listed_before=LISTED_BEFORE,
            **WAIT_ARGS,
        )
        archive = QianfanDownloadExportOperator(
            task_id="download_and_archive", model_id="{{ params.model_version_id }}", export_id=EXPORT_ID
        )
        approve_before(create, export_summary, "Export Qianfan model version {{ params.model_version_id }}?")
        create >> wait >> archive
    return dag
