"""The archive on a real S3 API (moto's server on 127.0.0.1, SigV4 over HTTP): multipart, If-None-Match,
resume from ListParts after a SIGKILL, abort on fatal errors, verification, clear configuration errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading

import pytest
from harvest_emulator.credentials import ARCHIVE_S3_SECRET
from harvest_emulator.object_store import ARCHIVE_BUCKET

from artifact_harvest.core.archive import ArchiveConflict, Archiver
from artifact_harvest.core.errors import FatalProviderError
from tests.integration.core.test_archive import archive, staged
from tests.support import StateStore

MiB = 1 << 20
PART = 5 * MiB  # S3's smallest part


def payload(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * (MiB // 32)
    return (block * (size // len(block) + 1))[:size]


def keys(object_store) -> list[str]:
    listing = object_store.client().list_objects_v2(Bucket=ARCHIVE_BUCKET)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def open_uploads(object_store) -> list[dict]:
    return object_store.client().list_multipart_uploads(Bucket=ARCHIVE_BUCKET).get("Uploads", [])


def body(object_store, key: str) -> bytes:
    return object_store.client().get_object(Bucket=ARCHIVE_BUCKET, Key=key)["Body"].read()


def count_calls(archiver: Archiver, operation: str) -> list[int]:
    calls: list[int] = []
    archiver.store.client.meta.events.register(f"before-call.s3.{operation}", lambda **_: calls.append(1))
    return calls


def test_multipart_upload_then_manifest_verified_in_the_store(s3_archive, object_store, staging_dir, caplog):
    data = payload(12 * MiB + 3)
    file = staged(staging_dir, data)
    state = StateStore()
    archiver = Archiver(state=state, part_size=PART)
    parts = count_calls(archiver, "UploadPart")

    with caplog.at_level("INFO"):
        manifest = archive(archiver, file)

    assert keys(object_store) == ["archive/minimax/job-1/manifest.json", "archive/minimax/job-1/model.bin"]
    assert body(object_store, "archive/minimax/job-1/model.bin") == data
    assert json.loads(body(object_store, "archive/minimax/job-1/manifest.json")) == manifest
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest() and manifest["size_bytes"] == len(data)
    assert manifest["path"].startswith("s3://") and manifest["path"].endswith("harvest-archive/archive/minimax/job-1/model.bin")
    assert len(parts) == 3, "12 MiB in 5 MiB parts"
    assert "by size and ChecksumSHA256" in caplog.text
    head = object_store.client().head_object(Bucket=ARCHIVE_BUCKET, Key="archive/minimax/job-1/model.bin",
                                             ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"]
    assert not file.path.exists() and open_uploads(object_store) == [] and state.values == {}
    assert Archiver().manifest("minimax", "job-1") == manifest


def test_same_bytes_again_is_a_noop_and_different_bytes_a_conflict(s3_archive, object_store, staging_dir):
    first = archive(Archiver(part_size=PART), staged(staging_dir, b"same bytes"))
    again = staged(staging_dir, b"same bytes")
    archiver = Archiver(part_size=PART)
    started = count_calls(archiver, "CreateMultipartUpload")

    assert archive(archiver, again) == first
    assert started == [] and not again.path.exists()

    other = staged(staging_dir, b"other bytes")
    with pytest.raises(ArchiveConflict) as info:
        archive(Archiver(part_size=PART), other)
    assert first["sha256"] in str(info.value) and other.sha256 in str(info.value)
    assert body(object_store, "archive/minimax/job-1/model.bin") == b"same bytes"
    assert other.path.exists(), "the staged copy is kept for inspection"


def test_object_without_manifest_is_verified_never_overwritten(s3_archive, object_store, staging_dir):
    key = "archive/minimax/job-1/model.bin"
    object_store.client().put_object(Bucket=ARCHIVE_BUCKET, Key=key, Body=b"left by a crash")

    file = staged(staging_dir, b"new download")
    with pytest.raises(ArchiveConflict) as info:
        archive(Archiver(part_size=PART), file)
    assert hashlib.sha256(b"left by a crash").hexdigest() in str(info.value) and file.sha256 in str(info.value)
    assert body(object_store, key) == b"left by a crash" and keys(object_store) == [key]

    same = staged(staging_dir, b"left by a crash")
    archiver = Archiver(part_size=PART)
    started = count_calls(archiver, "CreateMultipartUpload")
    manifest = archive(archiver, same)
    assert started == [] and manifest["sha256"] == same.sha256
    assert keys(object_store) == ["archive/minimax/job-1/manifest.json", key]


def test_two_concurrent_archivers_of_one_key(s3_archive, object_store, tmp_path):
    """Both pass the HEAD check and upload at once; one data object and one manifest that agree remain.

    (Same bytes: two runs of one export. moto 5.2.5 checks If-None-Match without a lock, so two *different*
    objects completed in the same instant can both pass it there; real S3 serialises them: see docs/object-storage.md.)
    """
    data = [payload(6 * MiB, 1), payload(6 * MiB, 1)]
    files = [staged(tmp_path / f"staging{i}", data[i]) for i in range(2)]
    start = threading.Barrier(2)
    results: list[object] = [None, None]

    def run(i: int) -> None:
        archiver = Archiver(part_size=PART)
        start.wait(timeout=30)
        try:
            results[i] = archive(archiver, files[i])
        except Exception as exc:  # noqa: BLE001 - the assertion below says which
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    stored = body(object_store, "archive/minimax/job-1/model.bin")
    manifest = json.loads(body(object_store, "archive/minimax/job-1/manifest.json"))
    assert hashlib.sha256(stored).hexdigest() == manifest["sha256"] and len(stored) == manifest["size_bytes"]
    assert keys(object_store) == ["archive/minimax/job-1/manifest.json", "archive/minimax/job-1/model.bin"]
    assert open_uploads(object_store) == []
    assert stored == data[0] and results[0] == results[1] == manifest, results


_KILLED_CHILD = """
import json, os, signal, sys
from pathlib import Path
from artifact_harvest.core.archive import Archiver
from artifact_harvest.core.transfer import DownloadedFile

state_file, staged, sha256, size, kill_after = sys.argv[1:6]
class FileStateStore:  # the task state store, persisted so the next "try" (the parent) sees it
    def get(self, key, default=None):
        return json.loads(Path(state_file).read_text() or "{}").get(key, default)
    def set(self, key, value, retention=None):
        values = json.loads(Path(state_file).read_text() or "{}"); values[key] = value
        Path(state_file).write_text(json.dumps(values))
    def delete(self, key):
        pass
archiver = Archiver(state=FileStateStore(), part_size=5 << 20, max_workers=1)
sent = []
def maybe_die(**_):
    sent.append(1)
    if len(sent) == int(kill_after):
        os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-upload: no handler runs
archiver.store.client.meta.events.register("after-call.s3.UploadPart", maybe_die)
file = DownloadedFile(Path(staged), "model.tar", int(size), sha256, None, 0.0, 0)
archiver.archive(file, provider="qianfan", artifact_key="export-1", source={}, dag_id="d", run_id="r")
"""


def test_killed_upload_resumes_from_its_parts(s3_archive, object_store, staging_dir, tmp_path):
    data = payload(23 * MiB, 3)  # 5 parts
    file = staged(staging_dir, data, name="model.tar", key="export-1")
    state_file = tmp_path / "state.json"
    state_file.write_text("{}")

    child = subprocess.run(
        [sys.executable, "-c", _KILLED_CHILD, str(state_file), str(file.path), file.sha256, str(file.size), "3"],
        env=os.environ.copy(), capture_output=True, text=True, timeout=120,
    )
    assert child.returncode == -9, child.stderr
    saved = json.loads(state_file.read_text())
    (upload,) = open_uploads(object_store)
    assert [v["upload_id"] for v in saved.values()] == [upload["UploadId"]]
    assert keys(object_store) == [], "nothing is visible before CompleteMultipartUpload"

    state = StateStore()
    state.values.update(saved)
    archiver = Archiver(state=state, part_size=PART)
    sent, listed = count_calls(archiver, "UploadPart"), count_calls(archiver, "ListParts")
    manifest = archiver.archive(file, provider="qianfan", artifact_key="export-1", source={}, dag_id="d",
                                run_id="r")

    assert listed and len(sent) == 2, "3 of 5 parts were verified from the store, only 2 sent"
    assert body(object_store, "archive/qianfan/export-1/model.tar") == data
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert open_uploads(object_store) == [] and state.values == {} and not file.path.exists()


def test_lost_connection_keeps_the_upload_for_the_retry(s3_archive, object_store, staging_dir):
    """A transient failure after 2 parts: retryable, the upload and its id stay; the retry sends the rest."""
    from botocore.exceptions import EndpointConnectionError

    from artifact_harvest.core.errors import TransientProviderError

    data = payload(16 * MiB, 6)  # 4 parts
    file = staged(staging_dir, data)
    state = StateStore()
    first = Archiver(state=state, part_size=PART, max_workers=1)
    sent: list[int] = []

    def drop_third(**_):
        sent.append(1)
        if len(sent) == 3:
            raise EndpointConnectionError(endpoint_url=object_store.url)

    first.store.client.meta.events.register("before-call.s3.UploadPart", drop_third)
    with pytest.raises(TransientProviderError, match="Could not connect"):
        archive(first, file)
    (upload,) = open_uploads(object_store)
    assert len(state.values) == 1 and keys(object_store) == []
    stored = object_store.client().list_parts(Bucket=ARCHIVE_BUCKET, Key=upload["Key"],
                                              UploadId=upload["UploadId"])["Parts"]
    assert 2 <= len(stored) <= 3, "parts 1 and 2 (and 4, read ahead while 3 failed)"

    retry = Archiver(state=state, part_size=PART, max_workers=1)
    resent = count_calls(retry, "UploadPart")
    archive(retry, file)
    assert len(resent) == 4 - len(stored) and body(object_store, "archive/minimax/job-1/model.bin") == data
    assert open_uploads(object_store) == [] and state.values == {}


def test_fatal_error_aborts_the_upload_and_leaves_nothing(s3_archive, object_store, staging_dir):
    """The staged file no longer has the downloaded bytes: fatal, the multipart upload is aborted."""
    data = payload(11 * MiB, 4)
    file = staged(staging_dir, data)
    file.path.write_bytes(payload(11 * MiB, 5))  # same size, other bytes
    state = StateStore()

    with pytest.raises(FatalProviderError, match="staged file .* changed") as info:
        archive(Archiver(state=state, part_size=PART), file)

    assert file.sha256 in str(info.value)
    assert keys(object_store) == [] and open_uploads(object_store) == [] and state.values == {}
    assert file.path.exists()


def test_a_fresh_staged_version_aborts_the_stale_upload(s3_archive, object_store, staging_dir):
    """A stored upload id for other bytes (a re-download) is aborted, not resumed into a splice."""
    client = object_store.client()
    stale = client.create_multipart_upload(Bucket=ARCHIVE_BUCKET, Key="archive/minimax/job-1/model.bin",
                                           ChecksumAlgorithm="SHA256")["UploadId"]
    state = StateStore()
    state.values[f"archive_upload/{ARCHIVE_BUCKET}/archive/minimax/job-1/model.bin"] = {
        "upload_id": stale, "size": 1, "sha256": "0" * 64, "part_size": PART}

    manifest = archive(Archiver(state=state, part_size=PART), staged(staging_dir, b"fresh"))

    assert body(object_store, "archive/minimax/job-1/model.bin") == b"fresh" and manifest["size_bytes"] == 5
    assert open_uploads(object_store) == []


def test_a_stored_upload_that_is_gone_starts_again(s3_archive, object_store, staging_dir):
    """An upload aborted meanwhile (a lifecycle rule, an operator): ListParts says NoSuchUpload, a new one starts."""
    file = staged(staging_dir, payload(6 * MiB, 7))
    client = object_store.client()
    gone = client.create_multipart_upload(Bucket=ARCHIVE_BUCKET, Key="archive/minimax/job-1/model.bin")["UploadId"]
    client.abort_multipart_upload(Bucket=ARCHIVE_BUCKET, Key="archive/minimax/job-1/model.bin", UploadId=gone)
    state = StateStore()
    state.values[f"archive_upload/{ARCHIVE_BUCKET}/archive/minimax/job-1/model.bin"] = {
        "upload_id": gone, "size": file.size, "sha256": file.sha256, "part_size": PART}

    manifest = archive(Archiver(state=state, part_size=PART), file)

    assert manifest["sha256"] == file.sha256 and open_uploads(object_store) == [] and state.values == {}


def test_missing_bucket_fails_at_once_with_the_store_code(s3_archive, monkeypatch, staging_dir):
    monkeypatch.setenv("AIRFLOW_VAR_ARTIFACT_ARCHIVE_ROOT", "s3://no-such-harvest-bucket/archive")
    with pytest.raises(FatalProviderError, match="NoSuchBucket") as info:
        Archiver().manifest("minimax", "job-1")
    assert "does not exist" in str(info.value) and ARCHIVE_S3_SECRET not in str(info.value)


def test_wrong_credentials_fail_with_the_store_code_and_no_secret(s3_archive):
    from moto import settings

    before, settings.INITIAL_NO_AUTH_ACTION_COUNT = settings.INITIAL_NO_AUTH_ACTION_COUNT, 0  # keys are checked now
    try:
        with pytest.raises(FatalProviderError, match="InvalidAccessKeyId") as info:
            Archiver().manifest("minimax", "job-1")
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = before  # before the fixture empties the bucket
    assert ARCHIVE_S3_SECRET not in str(info.value) and "HTTP 403" in str(info.value)


def test_unknown_connection_id_is_named(s3_archive, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_ARTIFACT_ARCHIVE_CONN_ID", "no_such_archive_conn")
    with pytest.raises(FatalProviderError, match="'no_such_archive_conn'.*is not defined"):
        Archiver()


def test_s3_root_without_the_provider_says_what_to_install(s3_archive, monkeypatch):
    monkeypatch.setitem(sys.modules, "s3fs", None)  # what an environment without s3fs looks like to import
    with pytest.raises(FatalProviderError, match=r"apache-airflow-providers-amazon\[s3fs\]"):
        Archiver()


def test_secret_key_never_in_manifest_or_logs(s3_archive, staging_dir, caplog):
    with caplog.at_level("DEBUG"):
        manifest = archive(Archiver(part_size=PART), staged(staging_dir, b"x" * 100))
    assert ARCHIVE_S3_SECRET not in json.dumps(manifest) and ARCHIVE_S3_SECRET not in caplog.text
