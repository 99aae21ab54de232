"""Archive one existing MiniMax file by id: retrieve (wait for its URL) → download and archive."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, Param

from artifact_harvest.core.dag_defaults import PIPELINE_TAG, default_args, tags
from artifact_harvest.minimax.operators import MiniMaxDownloadOperator
from artifact_harvest.minimax.sensors import MiniMaxFileReadySensor

with DAG(
    dag_id="minimax_archive_file",
    description="Archive one existing MiniMax file (video or speech output) by its file id.",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    default_args=default_args(),
    tags=tags("minimax", PIPELINE_TAG),
    doc_md="""
### Archive one MiniMax file

For a `file_id` from a video or speech task (or `files/list`): waits until `files/retrieve` gives a download
URL, downloads it and archives it under `minimax/<file_id>/`. Already archived files are not downloaded again.
""",
    params={
        "file_id": Param(type="integer", minimum=1, title="File ID",
                         description="Required: the MiniMax file_id (a number, e.g. 316338466210001) from a video "
                         "or speech task's query answer, or from files/list."),
    },
) as dag:
    retrieve = MiniMaxFileReadySensor(task_id="retrieve", file_id="{{ params.file_id }}", poke_interval=10,
                                      timeout=3600)
    archive = MiniMaxDownloadOperator(task_id="download_and_archive", file_id="{{ params.file_id }}")
    retrieve >> archive
