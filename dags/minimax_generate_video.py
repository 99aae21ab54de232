"""MiniMax text/image-to-video: create → wait → retrieve → download and archive."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, Param

from artifact_harvest.core.dag_defaults import PIPELINE_TAG, default_args, tags
from artifact_harvest.minimax.hook import VIDEO_MODELS
from artifact_harvest.minimax.operators import MiniMaxCreateVideoOperator, MiniMaxDownloadOperator
from artifact_harvest.minimax.sensors import MiniMaxFileReadySensor, MiniMaxTaskSensor

FILE_ID = "{{ ti.xcom_pull(task_ids='wait')['file_id'] }}"

with DAG(
    dag_id="minimax_generate_video",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    default_args=default_args(),
    tags=tags("minimax", PIPELINE_TAG),
    doc_md="""
### MiniMax video generation

Submits one `POST /v1/video_generation` (at most once per task instance: a retry re-attaches to the stored
task id), waits in the triggerer until the task reports `Success` (`Fail`/`Failed` fail at once), waits until
`files/retrieve` hands out a download URL, then downloads it (fresh URL on every attempt: it lives 1 h) and
archives it under `minimax/<file_id>/` with a manifest.

Connection: `minimax_default` (host = base URL, password = API key).
""",
    params={
        "prompt": Param("A lighthouse at dawn, waves rolling in", type="string", minLength=1, maxLength=2000,
                        title="Prompt", description="What the video shows. Director models accept camera "
                        "commands in brackets, e.g. [Pan left]."),
        "model": Param("MiniMax-Hailuo-02", type="string", enum=list(VIDEO_MODELS), title="Model",
                       description="A documented V1 video model (I2V models need a first frame image)."),
        "duration": Param(6, type="integer", enum=[6, 10], title="Duration (s)",
                          description="6 or 10 seconds (10 s only at 768P on Hailuo-02)."),
        "resolution": Param("768P", type="string", enum=["512P", "768P", "1080P"], title="Resolution",
                            description="Output resolution; which ones are allowed depends on the model."),
        "first_frame_image": Param(None, type=["null", "string"], pattern=r"^(https?://|data:image/).+",
                                   title="First frame image",
                                   description="Optional image URL (or data: URL) the video starts from."),
        "poll_interval": Param(10, type="number", minimum=0.05, maximum=600, title="Poll interval (s)",
                               description="Seconds between status queries (MiniMax suggests about 10)."),
        "timeout": Param(3600, type="integer", minimum=1, maximum=7 * 24 * 3600, title="Timeout (s)",
                         description="Give up waiting for the video after this many seconds."),
        "resubmit_if_in_doubt": Param(False, type="boolean", title="Resubmit if in doubt",
                                      description="An earlier try's create may have been accepted but its answer "
                                      "was lost (MiniMax offers no lookup): submit again anyway, and maybe pay "
                                      "twice. Off: the run fails and says what to check in the MiniMax console."),
    },
) as dag:
    create = MiniMaxCreateVideoOperator(
        task_id="create",
        prompt="{{ params.prompt }}",
        model="{{ params.model }}",
        duration="{{ params.duration }}",
        resolution="{{ params.resolution }}",
        first_frame_image="{{ params.first_frame_image or '' }}",
        resubmit_if_in_doubt="{{ params.resubmit_if_in_doubt }}",
    )
    wait = MiniMaxTaskSensor(
        task_id="wait", minimax_task_id=create.output, kind="video",
        poll_interval="{{ params.poll_interval }}", wait_timeout="{{ params.timeout }}",
    )
    retrieve = MiniMaxFileReadySensor(
        task_id="retrieve", file_id=FILE_ID, poll_interval="{{ params.poll_interval }}",
        wait_timeout="{{ params.timeout }}",
    )
    archive = MiniMaxDownloadOperator(task_id="download_and_archive", file_id=FILE_ID,
                                      minimax_task_id=create.output)
    wait >> retrieve >> archive
