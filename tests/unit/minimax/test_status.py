"""The MiniMax status table: both failure spellings, any case, unknown statuses, file_id normalisation."""

from __future__ import annotations

import pytest

from artifact_harvest.core.errors import MalformedResponseError
from artifact_harvest.core.polling import Phase
from artifact_harvest.minimax.hook import MiniMaxFile
from artifact_harvest.minimax.status import judge_file, judge_task, normalise_file_id


@pytest.mark.parametrize(("kind", "status"), [
    ("video", "Preparing"), ("video", "Queueing"), ("video", "Processing"),
    ("speech", "processing"), ("speech", "Processing"),
])
def test_running_statuses(kind, status):
    assert judge_task(kind, {"task_id": "1", "status": status}).phase is Phase.RUNNING


@pytest.mark.parametrize("status", ["Fail", "Failed", "failed", "FAILED", "expired", "Expired"])
def test_failure_spellings_fail_fast(status):
    result = judge_task("video", {"task_id": "7", "status": status})
    assert result.phase is Phase.FAILED
    assert status in result.message and "7" in result.message


@pytest.mark.parametrize(("kind", "answer"), [
    ("video", {"task_id": "106", "status": "Success", "file_id": "205"}),
    ("speech", {"task_id": 106, "status": "success", "file_id": 205}),
])
def test_success_normalises_file_id_to_int(kind, answer):
    result = judge_task(kind, answer)
    assert result.phase is Phase.SUCCESS
    assert result.payload == {"task_id": "106", "file_id": 205}


def test_unknown_status_keeps_polling_with_a_warning(caplog):
    result = judge_task("video", {"task_id": "1", "status": "Rendering"})
    assert result.phase is Phase.RUNNING
    assert "undocumented status 'Rendering'" in result.message
    assert any("Rendering" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_success_without_file_id_is_malformed():
    with pytest.raises(MalformedResponseError, match="file_id"):
        judge_task("video", {"task_id": "1", "status": "Success", "file_id": ""})


@pytest.mark.parametrize(("value", "expected"), [("205", 205), (205, 205), (" 42 ", 42)])
def test_normalise_file_id(value, expected):
    assert normalise_file_id(value) == expected


def test_normalise_file_id_rejects_garbage():
    with pytest.raises(MalformedResponseError):
        normalise_file_id("abc")


def test_file_ready_only_with_url_and_never_passes_it_on():
    pending = MiniMaxFile(file_id=1, bytes=10, created_at=0, filename="a.mp4", purpose="video_generation")
    assert judge_file(pending).phase is Phase.RUNNING
    ready = MiniMaxFile(1, 10, 0, "a.mp4", "video_generation", download_url="https://x/y?Signature=s3cret")
    result = judge_file(ready)
    assert result.phase is Phase.SUCCESS
    assert result.payload == {"file_id": 1, "bytes": 10, "filename": "a.mp4"}
    assert "s3cret" not in repr(ready) and "s3cret" not in str(result)
