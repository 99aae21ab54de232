"""MiniMax asynchronous text-to-speech: create → wait → retrieve → download and archive the bundle."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, Param

from artifact_harvest.core.dag_defaults import FILTERS, PIPELINE_TAG, WAIT_ARGS, default_args, tags, waiting_params
from artifact_harvest.minimax.hook import SPEECH_MODELS
from artifact_harvest.minimax.operators import MiniMaxCreateSpeechOperator, MiniMaxDownloadOperator
from artifact_harvest.minimax.sensors import MiniMaxFileReadySensor, MiniMaxTaskSensor
from artifact_harvest.minimax.validation import TEXT_MAX_CHARS

FILE_ID = "{{ ti.xcom_pull(task_ids='wait')['file_id'] }}"

with DAG(
    dag_id="minimax_generate_speech",
    description="Turn your text into MiniMax speech (paid) and archive the audio bundle.",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    default_args=default_args(),
    tags=tags("minimax", PIPELINE_TAG),
    user_defined_filters=FILTERS,
    doc_md=f"""
### MiniMax asynchronous speech (t2a_async_v2, paid)

Submits one `POST /v1/t2a_async_v2` (once per task instance), waits in the triggerer until the task is
`success` (`failed`/`expired` fail at once; any capitalisation), waits for the file's download URL, then
downloads the result bundle (fresh URL per attempt: it lives 9 h) and archives it under `minimax/<file_id>/`.
The manifest also lists the bundle's members (audio, sentence subtitles, extra JSON), read without extracting.

The text is required: blank text or more than {TEXT_MAX_CHARS:,} characters is refused before anything is sent.
""",
    params={
        "text": Param(type="string", minLength=1, maxLength=TEXT_MAX_CHARS, pattern=r"\S", format="multiline",
                      title="Text", description=f"The text to speak (required, 1–{TEXT_MAX_CHARS:,} characters, "
                      "not only spaces)."),
        "model": Param("speech-2.8-hd", type="string", enum=list(SPEECH_MODELS), title="Model",
                       description="Speech model: -hd for quality, -turbo for speed."),
        "voice_id": Param("English_Graceful_Lady", type="string", minLength=1, pattern=r"\S", title="Voice ID",
                          examples=["English_Graceful_Lady", "English_Insightful_Speaker"],
                          description="A system voice id (MiniMax's voice list) or one of your cloned voices."),
        "format": Param("mp3", type="string", enum=["mp3", "wav", "flac", "pcm"],
                        values_display={"mp3": "MP3", "wav": "WAV", "flac": "FLAC", "pcm": "PCM (raw)"},
                        title="Audio format", description="Format of the audio member of the bundle."),
        **waiting_params(10, "The query allows 10 per second.", "PT1H", "the speech"),
        "resubmit_if_in_doubt": Param(False, type="boolean", title="Resubmit if in doubt", section="Options",
                                      description="An earlier try's create may have been accepted but its answer "
                                      "was lost (MiniMax offers no lookup): submit again anyway, and maybe pay "
                                      "twice. Off: the run fails and says what to check in the MiniMax console."),
    },
) as dag:
    create = MiniMaxCreateSpeechOperator(
        task_id="create",
        text="{{ params.text }}",
        model="{{ params.model }}",
        voice_id="{{ params.voice_id }}",
        audio_format="{{ params.format }}",
        resubmit_if_in_doubt="{{ params.resubmit_if_in_doubt }}",
    )
    wait = MiniMaxTaskSensor(task_id="wait", minimax_task_id=create.output, kind="speech", **WAIT_ARGS)
    retrieve = MiniMaxFileReadySensor(task_id="retrieve", file_id=FILE_ID, **WAIT_ARGS)
    archive = MiniMaxDownloadOperator(task_id="download_and_archive", file_id=FILE_ID,
                                      minimax_task_id=create.output)
    wait >> retrieve >> archive
