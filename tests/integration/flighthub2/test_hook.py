"""FlightHub2Hook and the photo upload against the emulator over real HTTP."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import requests

from artifact_harvest.core.errors import FatalProviderError, ProviderError, TransientProviderError
from artifact_harvest.flighthub2.hook import FlightHub2Hook
from artifact_harvest.flighthub2.upload import PhotoUploader, UploadTarget, list_photos
from harvest_emulator.credentials import FLIGHTHUB2_PROJECT_UUID, FLIGHTHUB2_TOKEN
from tests.support import uploaded_photos

PHOTOS = Path(__file__).resolve().parents[3] / "include" / "sample_data" / "flighthub2_photos"


def _conn(monkeypatch, conn_id: str, url: str, password: str = FLIGHTHUB2_TOKEN, **extra) -> str:
    conn = {"conn_type": "flighthub2", "host": url, "password": password,
            "extra": {"project_uuid": FLIGHTHUB2_PROJECT_UUID, **extra}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def upload(hook: FlightHub2Hook, photos=PHOTOS) -> str:
    credential = hook.obtain_upload_credential()
    target = UploadTarget.from_credential(credential)
    seen: dict[str, str] = {}
    etags = PhotoUploader(target, credential, hook.obtain_upload_credential).upload(
        list_photos(str(photos)), {}, seen.__setitem__
    )
    assert etags == seen
    hook.upload_callback(target.resource_uuid, target.callback_param,
                         [{"name": n, "etag": e} for n, e in etags.items()], "test")
    return target.resource_uuid


def test_headers_and_projects(emu):
    hook = FlightHub2Hook()
    projects = hook.projects()
    assert [p["uuid"] for p in projects] == [FLIGHTHUB2_PROJECT_UUID]
    assert hook.projects(page=2) == []  # data.list null → []
    sent = emu.control.requests("/openapi/v0.1/project")
    headers = sent[0]["headers"]
    assert headers["X-User-Token"] == FLIGHTHUB2_TOKEN
    assert headers["X-Project-Uuid"] == FLIGHTHUB2_PROJECT_UUID and headers["X-Language"] == "en"
    ids = [{k.lower(): v for k, v in r["headers"].items()}["x-request-id"] for r in sent]
    assert len(set(ids)) == 2  # a fresh request id per call
    assert "project_uuid" not in {k.lower() for k in headers} and "language" not in {k.lower() for k in headers}


def test_project_sts_token(emu):
    data = FlightHub2Hook().project_sts_token()
    assert data["credentials"]["access_key_id"] and data["bucket"]


def test_upload_callback_resource_and_delete(emu, object_store):
    hook = FlightHub2Hook()
    resource_uuid = upload(hook)
    names = sorted(p.name for p in PHOTOS.iterdir())
    details = hook.resource(resource_uuid)
    assert details["status"] == 1 and details["file_names"] == names
    assert details["resource_size"] == sum(p.stat().st_size for p in PHOTOS.iterdir())
    stored = uploaded_photos(object_store, resource_uuid)  # moto's S3: SigV4 checked, ETags its own
    assert {name: o["body"] for name, o in stored.items()} == {p.name: p.read_bytes() for p in PHOTOS.iterdir()}
    assert all(o["etag"] == hashlib.md5(o["body"]).hexdigest() for o in stored.values())
    hook.delete_resource(resource_uuid)
    deleted = hook.resource(resource_uuid)
    assert deleted["status"] == 3 and deleted["file_names"] == []  # null file_names → []


def test_upload_callback_batches_of_100(emu, tmp_path):
    for i in range(205):
        (tmp_path / f"p{i:03d}.jpg").write_bytes(b"x%d" % i)
    hook = FlightHub2Hook()
    upload(hook, tmp_path)
    calls = emu.control.requests("upload_callback")
    assert len(calls) == 3


def test_upload_skips_files_already_uploaded_and_renews_expiring_keys(emulator_s3):
    """On the emulator's S3, which logs the Authorization header of each PUT (the renewed key shows there)."""
    emu = emulator_s3
    hook = FlightHub2Hook()
    credential = hook.obtain_upload_credential()
    target = UploadTarget.from_credential(credential)
    photos = list_photos(str(PHOTOS))
    expiring = {**credential, "expire_time": 0}  # already expired: must be renewed before the first PUT
    etags = PhotoUploader(target, expiring, hook.obtain_upload_credential).upload(
        photos, {photos[0].name: "kept-from-earlier-try"}, lambda n, e: None
    )
    assert etags[photos[0].name] == "kept-from-earlier-try"
    puts = emu.control.requests(r"^/s3/")
    assert len(puts) == len(photos) - 1
    assert len(emu.control.requests("obtain_token")) == 2
    renewed_key = puts[0]["headers"]["Authorization"].split("Credential=")[1].split("/")[0]
    assert renewed_key != credential["access_key_id"]


def test_s3_rejects_unknown_access_key(emulator_s3):
    """moto accepts any key; the emulator's S3 checks them against the keys it issued."""
    hook = FlightHub2Hook()
    credential = hook.obtain_upload_credential()
    target = UploadTarget.from_credential(credential)
    forged = {**credential, "access_key_id": "STS.forged"}
    with pytest.raises(Exception, match="InvalidAccessKeyId"):
        PhotoUploader(target, forged, hook.obtain_upload_credential).upload(
            list_photos(str(PHOTOS)), {}, lambda n, e: None
        )


def _poll_until(fetch, done, attempts=10):
    for _ in range(attempts):
        answer = fetch()
        if done(answer):
            return answer
    raise AssertionError(f"never done: {answer}")


def test_start_poll_download_and_delete(emu):
    hook = FlightHub2Hook()
    started = hook.start_reconstruction(upload(hook), {"2d": {}, "3d": {"quality": "high"}})
    assert set(started) == {"2d", "3d"}
    jobs = {j["job_id"]: j["data"] for j in emu.control.jobs("flighthub2")}
    assert json.loads(jobs[started["3d"]]["parameters"]) == {"quality": "high"}  # a JSON document in a string
    details = _poll_until(lambda: hook.open_model(started["3d"]), lambda d: d["zip_status"] == 2)
    assert details["model_status"] == 15 and details["zip_file_key"]
    assert hook.download_url(details["zip_file_key"])["url"].startswith(emu.url)
    assert emu.control.requests("download-url")[0]["path"].endswith("/")  # v0.1 keeps the trailing slash
    assert hook.running_models() == [] or all(m["model_uuid"] != started["3d"] for m in hook.running_models())
    hook.delete_open_model(started["3d"])
    with pytest.raises(ProviderError, match="210404"):
        hook.open_model(started["3d"])


def test_stop_reconstruction_reports_canceled(emu):
    hook = FlightHub2Hook()
    model_uuid = hook.start_reconstruction(upload(hook), {"3d": {}})["3d"]
    assert [m["model_uuid"] for m in hook.running_models()] == [model_uuid]
    hook.stop_reconstruction(model_uuid)
    assert hook.open_model(model_uuid)["model_status"] == 16


def test_running_list_is_read_page_by_page_until_an_empty_page(emu):
    emu.control.configure(flighthub2_page_size=2)
    hook = FlightHub2Hook()
    resource_uuid = upload(hook)
    started = {**hook.start_reconstruction(resource_uuid, {"2d": {}, "3d": {}}),
               **{f"again-{t}": u for t, u in hook.start_reconstruction(resource_uuid, {"3d": {}}).items()}}
    emu.control.clear_requests()
    assert sorted(m["model_uuid"] for m in hook.running_models()) == sorted(started.values())
    assert [r["query"] for r in emu.control.requests("models/running$")] == [{"page": "1"}, {"page": "2"},
                                                                             {"page": "3"}]


def test_find_started_matches_new_jobs_of_the_resource_exactly(emu):
    from artifact_harvest.core.idempotency import Ambiguous

    hook = FlightHub2Hook()
    resource_uuid, other = upload(hook), upload(hook)
    hook.start_reconstruction(other, {"3d": {}})  # another resource: never a candidate
    earlier = hook.start_reconstruction(resource_uuid, {"3d": {}})["3d"]  # ran before: in the snapshot
    ours = hook.start_reconstruction(resource_uuid, {"3d": {}, "2d": {}})
    assert hook.find_started(resource_uuid, ["3d", "2d"], [earlier]) == ours
    assert hook.find_started(resource_uuid, ["lidar"], [earlier]) is None  # nothing of that type runs
    with pytest.raises(Ambiguous, match="several|exactly one"):
        hook.find_started(resource_uuid, ["3d"], [])  # two new 3D jobs: cannot tell which
    _poll_until(lambda: hook.open_model(ours["2d"]), lambda d: d["zip_status"] == 2)  # 2D ended: not listed
    with pytest.raises(Ambiguous, match="finished"):
        hook.find_started(resource_uuid, ["3d", "2d"], [earlier])  # 3D found, 2D not: a person decides


def test_model_management(emu):
    emu.control.push_scenario("flighthub2", create_at=1767225600)
    hook = FlightHub2Hook(api_version="v2.0")
    model_id = hook.create_model("m", ["model_3d"], task_folder_id=7, quality_level="high")
    models = {m["id"]: m for m in hook.all_models(page_size=1)}  # pages until a short page
    assert models[model_id]["create_at"] == 1767225600 and len(models) == 3  # two seeded for the demo
    assert hook.model(model_id)["url"].startswith(emu.url)
    assert hook.download_url(str(model_id))["url"] == ""  # first look: still compressing
    assert hook.download_url(str(model_id))["url"]
    assert not emu.control.requests("download-url")[0]["path"].endswith("/")  # v2.0: no trailing slash


async def test_async_twins(emu):
    hook = FlightHub2Hook()
    model_uuid = hook.start_reconstruction(upload(hook), {"lidar": {}})["lidar"]
    assert (await hook.aopen_model(model_uuid))["model_status"] == 12
    await hook.astop_reconstruction(model_uuid)
    assert (await hook.aopen_model(model_uuid))["model_status"] == 16
    assert (await hook.amodel(1001))["id"] == 1001
    assert (await hook.adownload_url("1001"))["url"]


def test_missing_and_wrong_token_fail_at_once_with_what_to_fix(emu, monkeypatch):
    with pytest.raises(FatalProviderError) as info:
        FlightHub2Hook(_conn(monkeypatch, "fh_wrong", emu.url, password="not-the-key")).projects()
    assert info.value.code == 200401 and "is invalid" in str(info.value) and "organization key" in str(info.value)
    assert "request id" in str(info.value)
    assert len(emu.control.requests("/openapi/v0.1/project")) == 1  # not retried
    raw = requests.get(f"{emu.url}/openapi/v0.1/project", timeout=5).json()
    assert raw == {"code": 200401, "message": "X-User-Token not found or empty"}


def test_wrong_project_is_fatal_with_membership_hint(emu, monkeypatch):
    hook = FlightHub2Hook(_conn(monkeypatch, "fh_project", emu.url, project_uuid="other", language="zh"))
    with pytest.raises(FatalProviderError, match="member of that project") as info:
        hook.obtain_upload_credential()
    assert info.value.code == 200403
    assert emu.control.requests("obtain_token")[0]["headers"]["X-Language"] == "zh"


def test_missing_project_uuid_names_the_field(monkeypatch, emu):
    with pytest.raises(FatalProviderError, match="Project UUID") as info:
        FlightHub2Hook(_conn(monkeypatch, "fh_noproject", emu.url, project_uuid="")).projects()
    assert info.value.field == "project_uuid" and "fh_noproject" in str(info.value)
    assert emu.control.requests("/openapi/") == []  # refused before any call


def test_language_is_a_word_in_the_connection(monkeypatch, emu):
    """Stored as English/Chinese (the masker warns about two-letter extra values); sent as the code."""
    FlightHub2Hook(_conn(monkeypatch, "fh_zh", emu.url, language="Chinese")).projects()
    assert emu.control.requests("/openapi/v0.1/project")[0]["headers"]["X-Language"] == "zh"
    with pytest.raises(FatalProviderError, match="English or Chinese"):
        FlightHub2Hook(_conn(monkeypatch, "fh_fr", emu.url, language="French")).projects()


def test_no_password_is_fatal(monkeypatch, emu):
    with pytest.raises(FatalProviderError, match="organization key"):
        FlightHub2Hook(_conn(monkeypatch, "fh_empty", emu.url, password="")).projects()


@pytest.mark.parametrize("code", [210429, 200500, 210500, 210504, 210318])
def test_rate_limit_and_server_codes_are_retried(emu, code):
    emu.control.add_fault("/openapi/v0.1/model/1001", kind="envelope", body={"code": code, "message": "busy"}, times=2)
    assert FlightHub2Hook().model(1001)["id"] == 1001
    assert len(emu.control.requests("/model/1001")) == 3


def test_transient_errors_give_up_after_the_retry_budget(emu):
    emu.control.add_fault("/model/1001", kind="status", status=503, times=-1)
    with pytest.raises(TransientProviderError) as info:
        FlightHub2Hook().model(1001)
    assert info.value.http_status == 503 and info.value.request_id


def test_other_codes_are_provider_errors_and_secrets_never_leak(emu):
    emu.control.add_fault("/model/1001", kind="envelope", body={"code": 210001, "message": "bad " + FLIGHTHUB2_TOKEN})
    with pytest.raises(ProviderError) as info:
        FlightHub2Hook().model(1001)
    assert not isinstance(info.value, (TransientProviderError, FatalProviderError))
    assert info.value.code == 210001 and FLIGHTHUB2_TOKEN not in str(info.value)


def test_photo_upload_retries_a_bare_429_from_the_bucket(emulator_s3):
    """botocore's standard mode retries 503 SlowDown but not a plain 429, which S3-compatible gateways send."""
    emu = emulator_s3
    emu.control.add_fault(route="^/s3/", method="PUT", kind="status", status=429, times=2)
    resource_uuid = upload(FlightHub2Hook())
    assert resource_uuid and len(emu.control.faults()["applied"]) == 2
    puts = [r for r in emu.control.requests("^/s3/") if r["method"] == "PUT"]
    assert len([r for r in puts if r["status"] == 429]) == 2
