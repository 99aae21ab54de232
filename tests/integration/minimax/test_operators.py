"""Create operators submit once per task instance: a retry re-attaches to the stored MiniMax task id."""

from __future__ import annotations

import pytest

from tests.support import StateStore
from artifact_harvest.core.errors import ProviderError
from artifact_harvest.minimax.operators import (
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
    assert context["task_state_store"].values == {"minimax_task_id": first}
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
