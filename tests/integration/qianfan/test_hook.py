"""QianfanHook against the emulator over real HTTP: signed calls, every auth error, retries, envelopes."""

from __future__ import annotations

import json
import time
import types

import pytest
import requests

from artifact_harvest.core.errors import FatalProviderError, SubmissionInDoubt, TransientProviderError
from artifact_harvest.qianfan import hook as hook_module
from artifact_harvest.qianfan.hook import QianfanHook, bce_authorization, canonical_time
from artifact_harvest.qianfan.status import ExportState
from harvest_emulator.credentials import QIANFAN_AK, QIANFAN_SK
from harvest_emulator.qianfan import NO_POLICY_AK, NO_POLICY_SK, SEEDED_EXPORT_ID, SEEDED_MODEL_ID


def use_connection(monkeypatch, emu, conn_id: str, login: str, password: str, **extra) -> QianfanHook:
    conn = {"conn_type": "qianfan", "host": emu.url, "login": login, "password": password, "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return QianfanHook(conn_id)


def creates(emu) -> int:
    return sum(r["query"].get("Action") == "CreateModelExportTask" for r in emu.control.requests("/v2/model"))


def test_create_then_describe_until_done(emu):
    hook = QianfanHook()
    assert not hook.describe_export("amv-new1").has_record  # hasRecord false before the first export
    export_id = hook.create_export("amv-new1")
    assert export_id.startswith("amve-")
    first, second = hook.describe_export("amv-new1"), hook.describe_export("amv-new1")
    assert (first.export_id, first.state) == (export_id, ExportState.DOING)
    assert (second.export_id, second.state) == (export_id, ExportState.DONE)
    body = requests.get(second.download_url, timeout=10).content
    assert len(body) == second.file_size and second.file_name.endswith(".tar")


async def test_async_twins(emu):
    hook = QianfanHook()
    export_id = await hook.acreate_export("amv-async1")
    record = await hook.adescribe_export("amv-async1")
    assert (record.export_id, record.state) == (export_id, ExportState.DOING)


def test_seeded_version_has_a_done_export(emu):
    record = QianfanHook().describe_export(SEEDED_MODEL_ID)
    assert (record.export_id, record.state) == (SEEDED_EXPORT_ID, ExportState.DONE)


def test_every_request_is_signed_with_the_documented_headers(emu):
    QianfanHook().describe_export(SEEDED_MODEL_ID)
    [request] = emu.control.requests("/v2/model")
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["authorization"].startswith(f"bce-auth-v1/{QIANFAN_AK}/{headers['x-bce-date']}/300/")
    assert "/host;x-bce-date;content-type/" in headers["authorization"]
    assert headers["content-type"] == "application/json" and request["query"] == {"Action": "DescribeModelExportTask"}
    assert QIANFAN_SK not in json.dumps(request)


def test_sign_expiration_comes_from_the_connection(emu, monkeypatch):
    use_connection(monkeypatch, emu, "qf_exp", QIANFAN_AK, QIANFAN_SK, sign_expiration_seconds=60).describe_export("amv-x1")
    [request] = emu.control.requests("/v2/model")
    assert "/60/host;" in request["headers"]["Authorization"]


def test_wrong_secret_key_fails_at_once_with_what_to_check(emu, monkeypatch):
    hook = use_connection(monkeypatch, emu, "qf_bad_sk", QIANFAN_AK, "QfWrongSecretKey000000000000000")
    with pytest.raises(FatalProviderError) as info:
        hook.describe_export("amv-x1")
    error = info.value
    assert (error.code, error.http_status) == ("SignatureDoesNotMatch", 403)
    assert error.request_id and error.request_id in str(error) and "secret key" in str(error)
    assert "QfWrongSecretKey" not in str(error)
    assert len(emu.control.requests("/v2/model")) == 1  # not retried


def test_unknown_access_key(emu, monkeypatch):
    hook = use_connection(monkeypatch, emu, "qf_bad_ak", "QfUnknownAccessKey0000000000", QIANFAN_SK)
    with pytest.raises(FatalProviderError) as info:
        hook.create_export("amv-x1")
    assert (info.value.code, info.value.http_status) == ("InvalidAccessKeyId", 403)
    assert "AK/SK" in str(info.value) and "QfUnknownAccessKey" not in str(info.value)


def test_missing_policy_names_the_iam_policies(emu, monkeypatch):
    hook = use_connection(monkeypatch, emu, "qf_nopolicy", NO_POLICY_AK, NO_POLICY_SK)
    with pytest.raises(FatalProviderError) as info:
        hook.create_export("amv-x1")
    assert (info.value.code, info.value.http_status) == ("AccessDenied", 403)
    assert "QianfanFullControlAccessPolicy" in str(info.value)
    assert "QianfanModelTuningFullControlAccessPolicy" in str(info.value)


def test_clock_skew_gives_request_expired(emu, monkeypatch):
    """A worker whose clock is an hour behind: only a fake clock can produce that."""
    skewed = types.SimpleNamespace(time=lambda: time.time() - 3600, gmtime=time.gmtime, strftime=time.strftime)
    monkeypatch.setattr(hook_module, "time", skewed)
    with pytest.raises(FatalProviderError) as info:
        QianfanHook().describe_export("amv-x1")
    assert (info.value.code, info.value.http_status) == ("RequestExpired", 400)
    assert "clock" in str(info.value)


def raw_call(emu, signed_headers, *, sk=QIANFAN_SK, timestamp=None, expiration=300) -> requests.Response:
    timestamp = int(time.time()) if timestamp is None else timestamp
    host = emu.url.split("://", 1)[1]
    body = json.dumps({"modelId": SEEDED_MODEL_ID}).encode()
    headers = {"Host": host, "Content-Type": "application/json", "Content-Length": str(len(body)),
               "x-bce-date": canonical_time(timestamp)}
    headers["Authorization"] = bce_authorization(
        QIANFAN_AK, sk, "POST", "/v2/model", {"Action": "DescribeModelExportTask"}, headers,
        timestamp=timestamp, expiration=expiration, signed_headers=signed_headers)
    return requests.post(f"{emu.url}/v2/model", params={"Action": "DescribeModelExportTask"},
                         data=body, headers=headers, timeout=10)


@pytest.mark.parametrize("order", [("host", "x-bce-date"), ("x-bce-date", "host", "content-type"),
                                   ("content-type", "host", "x-bce-date"), ()])
def test_emulator_accepts_signed_headers_in_any_order(emu, order):
    resp = raw_call(emu, order)
    assert resp.status_code == 200, resp.text
    assert resp.json()["result"]["exportId"] == SEEDED_EXPORT_ID


def test_emulator_rejects_expired_and_wrong_signatures(emu):
    expired = raw_call(emu, ("host", "x-bce-date"), timestamp=int(time.time()) - 400, expiration=300)
    assert expired.status_code == 400 and expired.json()["code"] == "RequestExpired"
    assert set(expired.json()) == {"requestId", "code", "message"}
    wrong = raw_call(emu, ("host", "x-bce-date"), sk="not-the-secret")
    assert wrong.status_code == 403 and wrong.json()["code"] == "SignatureDoesNotMatch"
    unsigned = requests.post(f"{emu.url}/v2/model?Action=DescribeModelExportTask", json={"modelId": "amv-1"}, timeout=10)
    assert unsigned.status_code == 400 and unsigned.json()["code"] == "InvalidHTTPAuthHeader"


@pytest.mark.parametrize("status", [429])
def test_refusals_are_retried_even_for_a_create(emu, status):
    emu.control.add_fault("/v2/model", "status", status=status, times=2,
                          body={"requestId": "r-busy", "code": "Busy", "message": "try later"})
    export_id = QianfanHook().create_export("amv-retry1")
    assert export_id.startswith("amve-")
    assert len(emu.control.faults()["applied"]) == 2 and creates(emu) == 3


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_on_a_create_is_in_doubt_and_not_resent(emu, status):
    emu.control.add_fault("/v2/model", "status", status=status, times=2,
                          body={"requestId": "r-busy", "code": "Busy", "message": "try later"})
    with pytest.raises(SubmissionInDoubt, match="not sent again") as info:
        QianfanHook().create_export("amv-retry1")
    assert (info.value.code, info.value.http_status) == ("Busy", status)
    assert creates(emu) == 1


def test_a_server_error_on_describe_is_retried(emu):
    emu.control.add_fault("/v2/model", "status", status=500, times=2,
                          body={"requestId": "r-busy", "code": "Busy", "message": "try later"})
    assert not QianfanHook().describe_export("amv-retry2").has_record
    assert len(emu.control.faults()["applied"]) == 2


def test_persistent_rate_limit_surfaces_code_message_and_request_id(emu):
    emu.control.add_fault("/v2/model", "status", status=429, times=-1,
                          body={"requestId": "r-429", "code": "RateLimitExceeded", "message": "too many requests"})
    with pytest.raises(TransientProviderError) as info:
        QianfanHook().describe_export("amv-x1")
    text = str(info.value)
    assert "RateLimitExceeded" in text and "too many requests" in text and "r-429" in text


def test_invalid_argument_is_fatal_and_surfaced(emu):
    with pytest.raises(FatalProviderError) as info:
        QianfanHook().describe_export("not-a-version")
    assert (info.value.code, info.value.http_status) == ("InvalidRequestArgumentError", 400)
    assert info.value.request_id and "amv-" in info.value.provider_message
