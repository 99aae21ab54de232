"""The MiniMax pipelines: generate a video or speech, archive one file, sweep new files hourly (builders only)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from airflow.sdk import DAG, BaseOperator, CronTriggerTimetable, Param, task

from artifact_harvest.core.approval import PARAM as APPROVAL, Summarize, approval_param, approve_before
from artifact_harvest.core.dag_defaults import WAIT_ARGS, pipeline_dag, waiting_params
from artifact_harvest.core.intervals import advance_watermark, sweep_window
from artifact_harvest.minimax.approval import speech_summary, video_summary
from artifact_harvest.minimax.hook import SPEECH_MODELS
from artifact_harvest.minimax.operators import (
    MiniMaxCreateSpeechOperator,
    MiniMaxCreateVideoOperator,
    MiniMaxDownloadOperator,
    unarchived_files_between,
)
from artifact_harvest.minimax.sensors import MiniMaxFileReadySensor, MiniMaxTaskSensor
from artifact_harvest.minimax.validation import PROMPT_MAX_CHARS, TEXT_MAX_CHARS, VIDEO_COMBINATIONS, VIDEO_RULE

PROVIDER = "minimax"
#: the file the ``wait`` task found (generate video and speech)
FILE_ID = "{{ ti.xcom_pull(task_ids='wait')['file_id'] }}"
RESUBMIT = "{{ params.resubmit_if_in_doubt }}"

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

VIDEO_DOC = f"""
### MiniMax video generation (paid)

Submits one `POST /v1/video_generation` (at most once per task instance: a retry re-attaches to the stored
task id), waits in the triggerer until the task reports `Success` (`Fail`/`Failed` fail at once), waits until
`files/retrieve` hands out a download URL, then downloads it (fresh URL on every attempt: it lives 1 h) and
archives it under `minimax/<file_id>/` with a manifest.

The prompt is required. Before anything is sent, the `create` task checks what MiniMax would refuse (code 2013):
a blank prompt, more than {PROMPT_MAX_CHARS} characters, and model/duration/resolution combinations.
{VIDEO_RULE}.

Connection: `minimax_default` (host = base URL, password = API key).
"""

SPEECH_DOC = f"""
### MiniMax asynchronous speech (t2a_async_v2, paid)

Submits one `POST /v1/t2a_async_v2` (once per task instance), waits in the triggerer until the task is
`success` (`failed`/`expired` fail at once; any capitalisation), waits for the file's download URL, then
downloads the result bundle (fresh URL per attempt: it lives 9 h) and archives it under `minimax/<file_id>/`.
The manifest also lists the bundle's members (audio, sentence subtitles, extra JSON), read without extracting.

The text is required: blank text or more than {TEXT_MAX_CHARS:,} characters is refused before anything is sent.
"""

ARCHIVE_FILE_DOC = """
### Archive one MiniMax file

For a `file_id` from a video or speech task (or `files/list`): waits until `files/retrieve` gives a download
URL, downloads it and archives it under `minimax/<file_id>/`. Already archived files are not downloaded again.
"""

SWEEP_DOC = """
### Sweep new MiniMax outputs (hourly)

Lists `video_generation` and `t2a_async` files (`files/list` per purpose), keeps those whose `created_at`
falls in the run's window and are not archived yet, and archives each (one mapped task per file). Archived
files are skipped, so reruns and overlapping windows archive nothing twice.

**Which hours a run covers** (`sweep_window`; details in docs/sweeps.md). The run scheduled at 10:00 UTC
covers 09:00 to 10:00 (its data interval), reaching back to the end of the last run that succeeded
(`advance_watermark`) when that is earlier: after an outage, a pause or failed runs, nothing is skipped. A
backfill run covers exactly its hour. A manual run with a logical date covers the hour before that date, one
without covers the hour before it was triggered; both also reach back to the watermark.
"""


def _resubmit_param() -> Param:
    return Param(False, type="boolean", title="Resubmit if in doubt", section="Options",
                 description="An earlier try's create may have been accepted but its answer was lost (MiniMax "
                 "offers no lookup): submit again anyway, and maybe pay twice. Off: the run fails and says what "
                 "to check in the MiniMax console.")


def build_minimax_generate_video() -> DAG:
    """``minimax_generate_video``: create → wait → retrieve → download and archive (paid)."""
    return _generate_dag(
        "minimax_generate_video", kind="video",
        description="Generate one MiniMax video from your prompt (paid) and archive it.",
        doc_md=VIDEO_DOC,
        params={
            "prompt": Param(type="string", minLength=1, maxLength=PROMPT_MAX_CHARS, pattern=r"\S",
                            format="multiline", title="Prompt",
                            description=f"What the video shows (required, 1–{PROMPT_MAX_CHARS} characters, not "
                            "only spaces). Director models accept camera commands in brackets, e.g. [Pan left]."),
            "model": Param("MiniMax-Hailuo-02", type="string", enum=list(VIDEO_COMBINATIONS),
                           values_display=MODEL_LABELS, title="Model",
                           description="A V1 video model; image → video models need a first frame image."),
            "duration": Param(6, type="integer", enum=[6, 10], values_display={"6": "6 seconds", "10": "10 seconds"},
                              title="Duration", description="10 s: Hailuo 2.3 / 2.3 Fast / 02 at 768P only; every "
                              "other model and resolution is 6 s."),
            "resolution": Param(None, type=["null", "string"], enum=[None, "512P", "768P", "1080P"],
                                values_display={"None": "Model default", "512P": "512P (Hailuo 02 only, 6 s)",
                                                "768P": "768P", "1080P": "1080P (6 s only)"},
                                title="Resolution", description="Empty: the model's default (the T2V-01, I2V-01 "
                                "and S2V-01 families have a fixed resolution: leave it empty). " + VIDEO_RULE + "."),
            "first_frame_image": Param(None, type=["null", "string"], pattern=r"^(https?://|data:image/).+",
                                       title="First frame image",
                                       description="Image URL (https://…) or data:image/… URL the video starts "
                                       "from; JPG, PNG or WebP under 20 MB. Required by the image → video models."),
            **waiting_params(10, "MiniMax suggests about 10.", "PT1H", "the video"),
        },
        create=lambda: MiniMaxCreateVideoOperator(
            task_id="create",
            prompt="{{ params.prompt }}",
            model="{{ params.model }}",
            duration="{{ params.duration }}",
            resolution="{{ params.resolution or '' }}",
            first_frame_image="{{ params.first_frame_image or '' }}",
            resubmit_if_in_doubt=RESUBMIT,
        ),
        summarize=video_summary,
        subject="Generate a MiniMax video ({{ params.model }}, {{ params.duration }} s)? It is paid.",
    )


def build_minimax_generate_speech() -> DAG:
    """``minimax_generate_speech``: create → wait → retrieve → download and archive the bundle (paid)."""
    return _generate_dag(
        "minimax_generate_speech", kind="speech",
        description="Turn your text into MiniMax speech (paid) and archive the audio bundle.",
        doc_md=SPEECH_DOC,
        params={
            "text": Param(type="string", minLength=1, maxLength=TEXT_MAX_CHARS, pattern=r"\S", format="multiline",
                          title="Text", description=f"The text to speak (required, 1–{TEXT_MAX_CHARS:,} "
                          "characters, not only spaces)."),
            "model": Param("speech-2.8-hd", type="string", enum=list(SPEECH_MODELS), title="Model",
                           description="Speech model: -hd for quality, -turbo for speed."),
            "voice_id": Param("English_Graceful_Lady", type="string", minLength=1, pattern=r"\S", title="Voice ID",
                              examples=["English_Graceful_Lady", "English_Insightful_Speaker"],
                              description="A system voice id (MiniMax's voice list) or one of your cloned voices."),
            "format": Param("mp3", type="string", enum=["mp3", "wav", "flac", "pcm"],
                            values_display={"mp3": "MP3", "wav": "WAV", "flac": "FLAC", "pcm": "PCM (raw)"},
                            title="Audio format", description="Format of the audio member of the bundle."),
            **waiting_params(10, "The query allows 10 per second.", "PT1H", "the speech"),
        },
        create=lambda: MiniMaxCreateSpeechOperator(
            task_id="create",
            text="{{ params.text }}",
            model="{{ params.model }}",
            voice_id="{{ params.voice_id }}",
            audio_format="{{ params.format }}",
            resubmit_if_in_doubt=RESUBMIT,
        ),
        summarize=speech_summary,
        subject="Generate MiniMax speech ({{ params.model }}, {{ params.text | length }} characters)? It is paid.",
    )


def _generate_dag(dag_id: str, *, kind: str, description: str, doc_md: str, params: dict[str, Param],
                  create: Callable[[], BaseOperator], summarize: Summarize, subject: str) -> DAG:
    """One paid MiniMax pipeline: [approve →] create → wait → retrieve → download_and_archive.

    ``params`` are the job's own; the resubmit and approval Params are added here. ``create`` builds the create
    task inside the DAG block.
    """
    with pipeline_dag(
        dag_id, PROVIDER, description=description, doc_md=doc_md,
        params={**params, "resubmit_if_in_doubt": _resubmit_param(), APPROVAL: approval_param()},
    ) as dag:
        submit = create()
        approve_before(submit, summarize, subject)
        wait = MiniMaxTaskSensor(task_id="wait", minimax_task_id=submit.output, kind=kind, **WAIT_ARGS)
        retrieve = MiniMaxFileReadySensor(task_id="retrieve", file_id=FILE_ID, **WAIT_ARGS)
        archive = MiniMaxDownloadOperator(task_id="download_and_archive", file_id=FILE_ID,
                                          minimax_task_id=submit.output)
        wait >> retrieve >> archive
    return dag


def build_minimax_archive_file() -> DAG:
    """``minimax_archive_file``: retrieve (wait for the file's URL) → download and archive."""
    with pipeline_dag(
        "minimax_archive_file", PROVIDER,
        description="Archive one existing MiniMax file (video or speech output) by its file id.",
        doc_md=ARCHIVE_FILE_DOC,
        params={
            "file_id": Param(type="integer", minimum=1, title="File ID",
                             description="Required: the MiniMax file_id (a number, e.g. 316338466210001) from a "
                             "video or speech task's query answer, or from files/list."),
            **waiting_params(10, "MiniMax suggests about 10.", "PT1H", "the file's download URL"),
        },
    ) as dag:
        retrieve = MiniMaxFileReadySensor(task_id="retrieve", file_id="{{ params.file_id }}", **WAIT_ARGS)
        archive = MiniMaxDownloadOperator(task_id="download_and_archive", file_id="{{ params.file_id }}")
        retrieve >> archive
    return dag


# the window's files not archived yet, as MiniMaxDownloadOperator kwargs (one mapped task each)
@task
def find_new_files(window: dict[str, str]) -> list[dict]:
    return unarchived_files_between(datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"]))


def build_minimax_archive_new_files() -> DAG:
    """``minimax_archive_new_files``: hourly, archive every video and speech file created in the run's window."""
    with pipeline_dag(
        "minimax_archive_new_files", PROVIDER,
        description="Hourly: archive the MiniMax files created in the run's hour, and in any hour missed since "
        "the last success.",
        # @hourly with a one-hour data interval ending at each run (a bare "@hourly" has an empty interval in 3.x)
        schedule=CronTriggerTimetable("@hourly", timezone="UTC", interval=timedelta(hours=1)),
        max_active_runs=1,
        doc_md=SWEEP_DOC,
    ) as dag:
        window = sweep_window(PROVIDER, fallback=timedelta(hours=1))
        archived = MiniMaxDownloadOperator.partial(
            task_id="download_and_archive", map_index_template="file {{ task.artifact_key }}"
        ).expand_kwargs(find_new_files(window))
        archived >> advance_watermark(PROVIDER, window)
    return dag
