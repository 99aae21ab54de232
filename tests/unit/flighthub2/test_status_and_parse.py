"""FlightHub 2 logic decided from one answer alone: the status table, the envelope, the store_path."""

from __future__ import annotations

import json

import pytest

from artifact_harvest.core.errors import (
    FatalProviderError,
    MalformedResponseError,
    ProviderError,
    TransientProviderError,
)
from artifact_harvest.core.http import ApiResponse
from artifact_harvest.core.polling import Phase
from artifact_harvest.flighthub2.hook import FlightHub2Hook
from artifact_harvest.flighthub2.status import judge_download_url, judge_open_model
from artifact_harvest.flighthub2.upload import UploadTarget, expiry_epoch, resource_uuid_from_store_path


def model(status: int, zip_status: int = 0, **fields) -> dict:
    return {"model_uuid": "m-1", "resource_uuid": "r-1", "model_type": 2, "model_status": status,
            "zip_status": zip_status, "zip_file_key": "", "error_code": 0, **fields}


@pytest.mark.parametrize("status, zip_status", [(12, 0), (14, 0), (9, 0), (15, 1), (15, 2)])
def test_running_until_reconstructed_and_zipped(status, zip_status):
    # (15, 2) without a zip_file_key is not ready either: nothing to download yet
    assert judge_open_model(model(status, zip_status)).phase is Phase.RUNNING


def test_progress_is_in_the_message():
    assert "reconstruction_progress 40%" in judge_open_model(model(14, reconstruction_progress=40)).message
    assert "zip_progress 70%" in judge_open_model(model(15, 1, zip_progress=70)).message


@pytest.mark.parametrize("status", [9, 15])
def test_success_payload_has_ids_only(status):
    result = judge_open_model(model(status, 2, zip_file_key="zk-1", model_size=10))
    assert result.phase is Phase.SUCCESS
    assert result.payload == {"model_uuid": "m-1", "resource_uuid": "r-1", "model_type": 2, "model_size": 10,
                              "file_id": "zk-1"}


def test_file_id_field_is_configurable():
    result = judge_open_model(model(15, 2, zip_file_key="zk-1"), file_id_field="model_uuid")
    assert result.payload["file_id"] == "m-1"


@pytest.mark.parametrize("status, zip_status", [(8, 0), (13, 0), (16, 0), (15, 3), (9, 3)])
def test_terminal_failures_quote_the_error_code(status, zip_status):
    result = judge_open_model(model(status, zip_status, error_code=31001))
    assert result.phase is Phase.FAILED and "31001" in result.message and result.payload["error_code"] == 31001


def test_download_url():
    assert judge_download_url({"url": "", "id": 1}, "f").phase is Phase.RUNNING
    assert judge_download_url(None, "f").phase is Phase.RUNNING
    ready = judge_download_url({"url": "https://x/y?Signature=s", "id": 1}, "f")
    assert ready.phase is Phase.SUCCESS and ready.payload == {"file_id": "f", "id": 1}
    assert "Signature" not in ready.message


def answer(body, status: int = 200, headers=None) -> ApiResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ApiResponse("flighthub2", "GET", "/openapi/v0.1/x", status, headers or {}, raw, "req-1")


def parse(resp: ApiResponse):
    return FlightHub2Hook().parse(resp)


def test_success_returns_data_and_null_data_is_none():
    assert parse(answer({"code": 0, "message": "", "data": {"a": 1}})) == {"a": 1}
    assert parse(answer({"code": 0, "message": "success"})) is None


@pytest.mark.parametrize("code", [210429, 200500, 210500, 210504, 210318])
def test_retryable_codes(code):
    with pytest.raises(TransientProviderError) as info:
        parse(answer({"code": code, "message": "busy"}, headers={"Retry-After": "3"}))
    assert info.value.code == code and info.value.retry_after == 3 and "req-1" in str(info.value)


@pytest.mark.parametrize("code, hint", [(200401, "organization key"), (200403, "member of that project")])
def test_auth_codes_are_fatal_with_a_hint(code, hint):
    with pytest.raises(FatalProviderError, match=hint) as info:
        parse(answer({"code": code, "message": "no"}))
    assert info.value.code == code and info.value.http_status == 200


def test_other_codes_follow_the_http_status():
    with pytest.raises(ProviderError) as info:
        parse(answer({"code": 210001, "message": "odd"}))
    assert not isinstance(info.value, (TransientProviderError, FatalProviderError))
    with pytest.raises(FatalProviderError):
        parse(answer({"code": 210001, "message": "bad"}, status=400))
    with pytest.raises(TransientProviderError):
        parse(answer({"code": 210001, "message": "down"}, status=502))


def test_non_envelope_answers():
    with pytest.raises(TransientProviderError):
        parse(answer(b"<html>bad gateway</html>", status=502))
    with pytest.raises(FatalProviderError):
        parse(answer(b"not found", status=404))
    with pytest.raises(MalformedResponseError):
        parse(answer({"data": {}}))
    with pytest.raises(ProviderError, match="not JSON"):
        parse(answer(b"<html>", status=200))


def test_api_version_is_checked():
    with pytest.raises(ProviderError, match="api_version"):
        FlightHub2Hook(api_version="v3")


def test_store_path_and_expiry():
    path = "fh/organizations/o-1/open_reconstruction/tmp/1f2e-batch/{fileName}"
    assert resource_uuid_from_store_path(path) == "1f2e-batch"
    with pytest.raises(MalformedResponseError):
        resource_uuid_from_store_path("fh/organizations/o-1/x.jpg")
    assert expiry_epoch(1_800_000_000) == expiry_epoch(1_800_000_000_000) == 1_800_000_000
    target = UploadTarget.from_credential({"store_path": path, "cloud_bucket_name": "b", "end_point": "http://s3",
                                           "callback_param": "cb"})
    assert target.key("DJI_0001.JPG") == "fh/organizations/o-1/open_reconstruction/tmp/1f2e-batch/DJI_0001.JPG"
    assert UploadTarget(**target.to_dict()) == target
