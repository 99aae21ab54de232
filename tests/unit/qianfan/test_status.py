"""The export status table and the response envelope: every documented variant, one judgement."""

from __future__ import annotations

import json

import pytest

from artifact_harvest.core.errors import (
    FatalProviderError,
    MalformedResponseError,
    ProviderError,
    QuotaExhausted,
    TransientProviderError,
)
from artifact_harvest.core.http import ApiResponse
from artifact_harvest.core.polling import Phase
from artifact_harvest.qianfan.hook import QianfanHook
from artifact_harvest.qianfan.status import ExportRecord, ExportState, VanishWatch, is_missing, judge, replaced_by

DONE = {
    "exportId": "amve-xdakjnyn8nt5", "hasRecord": True, "fileName": "xxx_model_5d85.tar", "fileType": "Model",
    "md5": "5d858076889", "fileSize": 105664295936, "downloadUrl": "https://x.example/m.tar?authorization=secret",
}


@pytest.mark.parametrize("field", ["state", "status"])
@pytest.mark.parametrize(("raw", "state"), [("done", ExportState.DONE), ("Done", ExportState.DONE),
                                            ("DOING", ExportState.DOING), ("doing", ExportState.DOING),
                                            ("Fail", ExportState.FAIL), ("fail", ExportState.FAIL)])
def test_both_field_names_and_any_case(field, raw, state):
    assert ExportRecord.from_result({**DONE, field: raw}).state is state


def test_doc_example_with_duplicate_export_id_takes_the_last_one():
    # seed 002's second example (with its trailing comma removed): exportId appears twice
    text = """{"requestId":"1bef","result":{"exportId": "amve-xxxxx","hasRecord": true,"state": "done",
              "exportId": "amve-xdakjnyn8nt5","fileSize": 105664295936}}"""
    record = ExportRecord.from_result(json.loads(text)["result"])
    assert (record.export_id, record.state, record.file_size) == ("amve-xdakjnyn8nt5", ExportState.DONE, 105664295936)


def test_unknown_state_polls_on_and_a_missing_one_is_malformed(caplog):
    record = ExportRecord.from_result({**DONE, "status": "Exported"})
    assert record.state is None and record.raw_state == "Exported"
    result = judge(record, model_id="amv-1", export_id="amve-xdakjnyn8nt5")
    assert result.phase is Phase.RUNNING and "Exported" in result.message
    assert "undocumented state 'Exported'" in caplog.text
    with pytest.raises(MalformedResponseError, match="missing"):
        ExportRecord.from_result(DONE)


def test_no_record():
    record = ExportRecord.from_result({"hasRecord": False})
    assert not record.has_record and record.state is None


def test_done_payload_has_file_facts_and_never_the_url():
    result = judge(ExportRecord.from_result({**DONE, "state": "done"}), model_id="amv-1", export_id="amve-xdakjnyn8nt5")
    assert result.phase is Phase.SUCCESS
    assert result.payload == {"modelId": "amv-1", "exportId": "amve-xdakjnyn8nt5", "fileName": "xxx_model_5d85.tar",
                              "fileSize": 105664295936, "md5": "5d858076889"}
    assert "secret" not in repr(ExportRecord.from_result({**DONE, "state": "done"})) + result.message


def test_doing_runs_and_fail_fails():
    doing = ExportRecord(True, "amve-1", ExportState.DOING)
    assert judge(doing, model_id="amv-1").phase is Phase.RUNNING
    failed = judge(ExportRecord(True, "amve-1", ExportState.FAIL), model_id="amv-1")
    assert failed.phase is Phase.FAILED and "amve-1" in failed.message


def test_missing_before_any_export_is_just_not_started():
    assert judge(ExportRecord(False), model_id="amv-1", missing_for=None).phase is Phase.RUNNING


def test_vanish_fails_only_after_the_grace_period():
    gone = ExportRecord(False)
    assert judge(gone, model_id="amv-1", export_id="amve-1", missing_for=5, missing_grace_seconds=10).phase is Phase.RUNNING
    result = judge(gone, model_id="amv-1", export_id="amve-1", missing_for=10, missing_grace_seconds=10)
    assert result.phase is Phase.FAILED and "disappeared" in result.message


def test_another_export_in_place_of_ours_counts_as_missing_when_nothing_says_it_is_newer():
    other_done = ExportRecord(True, "amve-older", ExportState.DONE)
    assert judge(other_done, model_id="amv-1", export_id="amve-ours", missing_for=0, missing_grace_seconds=0).phase is Phase.FAILED


def test_the_export_listed_before_ours_showing_again_means_ours_is_gone():
    older_again = ExportRecord(True, "amve-older", ExportState.DONE)
    assert is_missing(older_again, "amve-ours", listed_before="amve-older")
    result = judge(older_again, model_id="amv-1", export_id="amve-ours", listed_before="amve-older", missing_for=0,
                   missing_grace_seconds=0)
    assert result.phase is Phase.FAILED and "disappeared" in result.message


@pytest.mark.parametrize("before", ["", "amve-older"])
@pytest.mark.parametrize(("state", "phase"), [(ExportState.DONE, Phase.SUCCESS), (ExportState.DOING, Phase.RUNNING),
                                              (ExportState.FAIL, Phase.FAILED)])
def test_a_newer_export_in_place_of_ours_is_followed(before, state, phase):
    newer = ExportRecord(True, "amve-newer", state, file_size=7)
    assert replaced_by(newer, "amve-ours", before) == "amve-newer" and not is_missing(newer, "amve-ours", before)
    watch = VanishWatch(expect_record=True)
    assert watch.missing_for(newer, "amve-ours", 10.0, before) is None  # no grace clock for a replacement
    result = judge(newer, model_id="amv-1", export_id="amve-ours", listed_before=before, missing_for=None)
    assert result.phase is phase and "replaced by export amve-newer" in result.message
    if phase is not Phase.RUNNING:
        assert result.payload["exportId"] == "amve-newer" and result.payload["replacesExportId"] == "amve-ours"


def test_vanish_watch_learns_from_doing_and_resets_when_the_record_returns():
    watch = VanishWatch()
    gone, doing = ExportRecord(False), ExportRecord(True, "amve-1", ExportState.DOING)
    assert watch.missing_for(gone, None, 100.0) is None  # nothing started yet
    assert watch.missing_for(doing, None, 101.0) is None
    assert watch.missing_for(gone, None, 102.0) == 0.0
    assert watch.missing_for(gone, None, 105.0) == 3.0
    assert watch.missing_for(doing, None, 106.0) is None and watch.missing_since is None
    known = VanishWatch(expect_record=True)  # export id known from the create step: no Doing needed
    assert known.missing_for(gone, "amve-1", 50.0) == 0.0


def parse(resp: ApiResponse):
    return QianfanHook().parse(resp)


def answer(status: int, body, headers=None) -> ApiResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ApiResponse("qianfan", "POST", "/v2/model", status, headers or {}, raw, "local-id")


def test_parse_returns_the_result():
    assert parse(answer(200, {"requestId": "r", "result": {"exportId": "amve-1"}})) == {"exportId": "amve-1"}


def test_parse_rejects_a_success_without_result():
    with pytest.raises(MalformedResponseError, match="result"):
        parse(answer(200, {"requestId": "r"}))


@pytest.mark.parametrize(("status", "code", "hint"), [
    (403, "SignatureDoesNotMatch", "secret key"),
    (403, "InvalidAccessKeyId", "AK/SK"),
    (400, "RequestExpired", "clock"),
    (403, "AccessDenied", "QianfanModelTuningFullControlAccessPolicy"),
    (400, "PermissionDeniedError", "QianfanFullControlAccessPolicy"),
])
def test_auth_errors_are_fatal_with_what_to_check(status, code, hint):
    with pytest.raises(FatalProviderError) as info:
        parse(answer(status, {"requestId": "req-42", "code": code, "message": "nope"}))
    error = info.value
    assert (error.code, error.request_id, error.http_status, error.provider_message) == (code, "req-42", status, "nope")
    assert hint in str(error) and "req-42" in str(error) and code in str(error)


@pytest.mark.parametrize(("code", "hint"), [("QuotaLimitExceeded", "raise the Qianfan quota"),
                                           ("QuotaLimitExpired", "renew the Qianfan quota")])
def test_quota_codes_are_quota_exhausted(code, hint):
    with pytest.raises(QuotaExhausted) as info:
        parse(answer(400, {"requestId": "req-9", "code": code, "message": "quota used up"}))
    error = info.value
    assert not isinstance(error, (TransientProviderError, FatalProviderError))  # the retry policy decides
    assert (error.code, error.request_id, error.http_status, error.provider_message) == (code, "req-9", 400,
                                                                                         "quota used up")
    assert hint in error.reason and "fails without retrying" in error.reason and code in error.reason


@pytest.mark.parametrize("status", [429, 500, 503])
def test_rate_limit_and_server_errors_are_transient(status):
    with pytest.raises(TransientProviderError) as info:
        parse(answer(status, {"requestId": "req-7", "code": "InternalError", "message": "busy"}, {"Retry-After": "2"}))
    assert (info.value.code, info.value.request_id, info.value.retry_after) == ("InternalError", "req-7", 2.0)


def test_error_without_envelope_falls_back_to_http_semantics():
    with pytest.raises(TransientProviderError):
        parse(answer(502, b"<html>bad gateway</html>"))
    with pytest.raises(ProviderError) as info:
        parse(answer(409, {"unexpected": True}))
    assert info.value.http_status == 409 and not isinstance(info.value, TransientProviderError)
