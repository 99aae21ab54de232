"""MiniMax text/image-to-video: create → wait → retrieve → download and archive."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, Param

from artifact_harvest.core.dag_defaults import FILTERS, PIPELINE_TAG, WAIT_ARGS, default_args, tags, waiting_params
from artifact_harvest.minimax.operators import MiniMaxCreateVideoOperator, MiniMaxDownloadOperator
from artifact_harvest.minimax.sensors import MiniMaxFileReadySensor, MiniMaxTaskSensor
from artifact_harvest.minimax.validation import PROMPT_MAX_CHARS, VIDEO_COMBINATIONS, VIDEO_RULE

FILE_ID = "{{ ti.xcom_pull(task_ids='wait')['file_id'] }}"

MODEL_LABELS = {
    "MiniMax-Hailuo-2.3": "Hailuo 2.3 (text or image → video; 768P or 1080P)",
    "MiniMax-Hailuo-2.3-Fast": "Hailuo 2.3 Fast (image → video; needs a first frame)",
    "MiniMax-Hailuo-02": "Hailuo 02 (text or image → video; 512P, 768P or 1080P)",
    "T2V-01": "T2V-01 (text → video, 6 s)",
    "T2V-01-Director": "T2V-01 Director (text → video with [camera] commands, 6 s)",
    "I2V-01": "I2V-01 (image → video, 6 s; needs a first frame)",
    "I2V-01-Director": "I2V-01 Director (image → video with [camera] commands; needs a first frame)",
    "I2V-01-live": "I2V-01 live (image → video for illustrations; needs a first frame)",
    "S2V-01": "S2V-01 (subject reference → video, 6 s)",
}

with DAG(
    dag_id="minimax_generate_video",
    description="Generate one MiniMax video from your prompt (paid) and archive it.",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    default_args=default_args(),
    tags=tags("minimax", PIPELINE_TAG),
    user_defined_filters=FILTERS,
    doc_md=f"""
### MiniMax video generation (paid)

Submits one `POST /v1/video_generation` (at most once per task instance: a retry re-attaches to the stored
task id), waits in the triggerer until the task reports `Success` (`Fail`/`Failed` fail at once), waits until
`files/retrieve` hands out a download URL, then downloads it (fresh URL on every attempt: it lives 1 h) and
archives it under `minimax/<file_id>/` with a manifest.

The prompt is required. Before anything is sent, the `create` task checks what MiniMax would refuse (code 2013):
a blank prompt, more than {PROMPT_MAX_CHARS} characters, and model/duration/resolution combinations.
{VIDEO_RULE}.

Connection: `minimax_default` (host = base URL, password = API key).
""",
    params={
        "prompt": Param(type="string", minLength=1, maxLength=PROMPT_MAX_CHARS, pattern=r"\S", format="multiline",
                        title="Prompt", description=f"What the video shows (required, 1–{PROMPT_MAX_CHARS} "
                        "characters, not only spaces). Director models accept camera commands in brackets, "
                        "e.g. [Pan left]."),
        "model": Param("MiniMax-Hailuo-02", type="string", enum=list(VIDEO_COMBINATIONS), values_display=MODEL_LABELS,
                       title="Model", description="A V1 video model; image → video models need a first frame image."),
        "duration": Param(6, type="integer", enum=[6, 10], values_display={"6": "6 seconds", "10": "10 seconds"},
                          title="Duration", description="10 s: Hailuo 2.3 / 2.3 Fast / 02 at 768P only; every other "
                          "model and resolution is 6 s."),
        "resolution": Param(None, type=["null", "string"], enum=[None, "512P", "768P", "1080P"],
                            values_display={"None": "Model default", "512P": "512P (Hailuo 02 only, 6 s)",
                                            "768P": "768P", "1080P": "1080P (6 s only)"},
                            title="Resolution", description="Empty: the model's default (the T2V-01, I2V-01 and "
                            "S2V-01 families have a fixed resolution: leave it empty). " + VIDEO_RULE + "."),
        "first_frame_image": Param(None, type=["null", "string"], pattern=r"^(https?://|data:image/).+",
                                   title="First frame image",
                                   description="Image URL (https://…) or data:image/… URL the video starts from; "
                                   "JPG, PNG or WebP under 20 MB. Required by the image → video models."),
        **waiting_params(10, "MiniMax suggests about 10.", "PT1H", "the video"),
        "resubmit_if_in_doubt": Param(False, type="boolean", title="Resubmit if in doubt", section="Options",
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
        resolution="{{ params.resolution or '' }}",
        first_frame_image="{{ params.first_frame_image or '' }}",
        resubmit_if_in_doubt="{{ params.resubmit_if_in_doubt }}",
    )
    wait = MiniMaxTaskSensor(task_id="wait", minimax_task_id=create.output, kind="video", **WAIT_ARGS)
    retrieve = MiniMaxFileReadySensor(task_id="retrieve", file_id=FILE_ID, **WAIT_ARGS)
    archive = MiniMaxDownloadOperator(task_id="download_and_archive", file_id=FILE_ID,
                                      minimax_task_id=create.output)
    wait >> retrieve >> archive
