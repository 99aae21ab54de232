"""MiniMax asynchronous text-to-speech: create → wait → retrieve → download and archive the bundle."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, Param

from artifact_harvest.core.dag_defaults import PIPELINE_TAG, default_args, tags
from artifact_harvest.minimax.hook import SPEECH_MODELS
from artifact_harvest.minimax.operators import MiniMaxCreateSpeechOperator, MiniMaxDownloadOperator
from artifact_harvest.minimax.sensors import MiniMaxFileReadySensor, MiniMaxTaskSensor

FILE_ID = "{{ ti.xcom_pull(task_ids='wait')['file_id'] }}"

with DAG(
    dag_id="minimax_generate_speech",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    default_args=default_args(),
    tags=tags("minimax", PIPELINE_TAG),
    doc_md="""
### MiniMax asynchronous speech (t2a_async_v2)

Submits one `POST /v1/t2a_async_v2` (once per task instance), waits in the triggerer until the task is
`success` (`failed`/`expired` fail at once; any capitalisation), waits for the file's download URL, then
downloads the result bundle (fresh URL per attempt: it lives 9 h) and archives it under `minimax/<file_id>/`.
The manifest also lists the bundle's members (audio, sentence subtitles, extra JSON), read without extracting.
""",
    params={
        "text": Param("Artifact Harvest archived your files.", type="string", minLength=1, maxLength=50000,
                      title="Text", description="The text to speak (up to about 50 000 characters).",
                      format="multiline"),
        "model": Param("speech-2.8-hd", type="string", enum=list(SPEECH_MODELS), title="Model",
                       description="Speech model."),
        "voice_id": Param("English_Graceful_Lady", type="string", minLength=1, title="Voice ID",
                          description="A system or cloned voice id."),
        "format": Param("mp3", type="string", enum=["mp3", "wav", "flac", "pcm"], title="Audio format",
                        description="Format of the audio member of the bundle."),
        "poll_interval": Param(10, type="number", minimum=0.05, maximum=600, title="Poll interval (s)",
                               description="Seconds between status queries (the query allows 10 per second)."),
        "timeout": Param(3600, type="integer", minimum=1, maximum=7 * 24 * 3600, title="Timeout (s)",
                         description="Give up waiting for the speech after this many seconds."),
        "resubmit_if_in_doubt": Param(False, type="boolean", title="Resubmit if in doubt",
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
    wait = MiniMaxTaskSensor(
        task_id="wait", minimax_task_id=create.output, kind="speech",
        poll_interval="{{ params.poll_interval }}", wait_timeout="{{ params.timeout }}",
    )
    retrieve = MiniMaxFileReadySensor(
        task_id="retrieve", file_id=FILE_ID, poll_interval="{{ params.poll_interval }}",
        wait_timeout="{{ params.timeout }}",
    )
    archive = MiniMaxDownloadOperator(task_id="download_and_archive", file_id=FILE_ID,
                                      minimax_task_id=create.output)
    wait >> retrieve >> archive
