"""Create operators submit once per task instance: a retry re-attaches to the stored MiniMax task id."""

from __future__ import annotations

import pytest

from tests.support import StateStore
from artifact_harvest.core.errors import ProviderError
from artifact_harvest.core.usage import XCOM_KEY
from artifact_harvest.minimax.operators import (
    CHARACTERS_KEY,
    MiniMaxCreateSpeechOperator,
    MiniMaxCreateVideoOperator,
    MiniMaxDownloadOperator,
)


@pytest.mark.parametrize(("operator", "route"), [
    (MiniMaxCreateVideoOperator(task_id="create", prompt="p", model="MiniMax-Hailuo-02", duration="6", resolution="768P",
                                first_frame_image=""), "/v1/video_generation"),
    (MiniMaxCreateSpeechOperator(task_id="create", text="hi", voice_id="v", audio_format="wav"), "/v1/t2a_async_v2"),
])
def test_retry_reattaches_instead_of_submitting_again(emu, operator, route):
    context = {"task_state_store": StateStore()}
    first = operator.execute(context)
    assert operator.execute(context) == first  # the retry
    assert context["task_state_store"].values["minimax_task_id"] == first
    assert set(context["task_state_store"].values) <= {"minimax_task_id", CHARACTERS_KEY}
    [call] = emu.control.requests(route)
    assert call["method"] == "POST"
    [job] = emu.control.jobs("minimax")
    assert job["job_id"] == first


def test_video_options_are_sent_typed_and_empty_ones_left_out(emu):
    op = MiniMaxCreateVideoOperator(task_id="create", prompt="p", model="MiniMax-Hailuo-02", duration="10", resolution="768P",
                                    first_frame_image="")
    op.execute({"task_state_store": StateStore()})
    [job] = emu.control.jobs("minimax")
    assert job["data"]["body"] == {"model": "MiniMax-Hailuo-02", "prompt": "p", "duration": 10,
                                      "resolution": "768P"}


def test_download_refuses_a_file_without_url_yet(emu):
    from artifact_harvest.minimax.hook import MiniMaxHook

    hook = MiniMaxHook()
    task_id = hook.create_video("p", "T2V-01")
    file_id = next(a["file_id"] for a in (hook.query_video(task_id) for _ in range(5)) if a["file_id"])
    with pytest.raises(ProviderError, match="no download URL yet"):
        MiniMaxDownloadOperator(task_id="dl", file_id=file_id).remote_file({})  # first look: still pending


class PushingTI:
    """The part of a task instance the create step uses to hand its usage on."""

    def __init__(self) -> None:
        self.pushed: dict = {}

    def xcom_push(self, key: str, value) -> None:
        self.pushed[key] = value


def test_speech_usage_is_what_minimax_counted_and_survives_a_retry(emu):
    store, first, retry = StateStore(), PushingTI(), PushingTI()
    MiniMaxCreateSpeechOperator(task_id="create", text="hello", voice_id="v").execute(
        {"task_state_store": store, "ti": first})
    # the retry runs in a new process: a fresh operator that re-attaches and never sees the create answer
    MiniMaxCreateSpeechOperator(task_id="create", text="hello", voice_id="v").execute(
        {"task_state_store": store, "ti": retry})
    expected = {"characters": {"value": 5, "unit": "characters", "source": "provider"}}
    assert first.pushed == retry.pushed == {XCOM_KEY: expected}
    assert len(emu.control.requests("/v1/t2a_async_v2")) == 1


def test_speech_usage_without_usage_characters_is_the_text_sent_labelled_so(emu):
    emu.control.add_fault(route="/v1/t2a_async_v2", kind="envelope", times=1,
                          body={"task_id": 7, "base_resp": {"status_code": 0, "status_msg": "success"}})
    ti = PushingTI()
    assert MiniMaxCreateSpeechOperator(task_id="create", text="hello there", voice_id="v").execute(
        {"task_state_store": StateStore(), "ti": ti}) == "7"
    assert ti.pushed == {XCOM_KEY: {"characters": {"value": 11, "unit": "characters", "source": "request"}}}


def test_video_usage_is_the_duration_and_resolution_sent(emu):
    ti = PushingTI()
    MiniMaxCreateVideoOperator(task_id="create", prompt="p", model="MiniMax-Hailuo-02", duration="10",
                               resolution="768P").execute({"task_state_store": StateStore(), "ti": ti})
    assert ti.pushed == {XCOM_KEY: {"video_seconds": {"value": 10, "unit": "s", "source": "request"},
                                    "resolution": {"value": "768P", "unit": "", "source": "request"}}}
