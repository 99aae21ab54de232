"""A multipart upload that disappears mid-transfer (a lifecycle rule or another process aborts it), on moto's
S3 server: the abort comes from outside, through a second boto3 client, between two of our parts or just
before CompleteMultipartUpload. The archive starts a new upload (bounded), or fails retryably, and the retry
archives exactly the staged bytes. botocore's event hooks only time the abort: every request is real.

moto 5.2 answers UploadPart and CompleteMultipartUpload for an aborted upload with a 500 (a KeyError inside
the server) where S3 answers 404 ``NoSuchUpload``: the tests named ``..._moto_answering_like_s3`` make moto's
backend (in this process, behind its real HTTP server) answer as S3 does; the last test keeps moto's 500.
"""

from __future__ import annotations

import hashlib

import pytest
from harvest_emulator.object_store import ARCHIVE_BUCKET

from artifact_harvest.core import archive_s3
from artifact_harvest.core.archive import Archiver
from artifact_harvest.core.errors import TransientProviderError
from tests.integration.core.test_archive import archive, staged
from tests.integration.core.test_archive_s3 import PART, body, count_calls, keys, open_uploads, payload
from tests.support import StateStore

KEY = "archive/minimax/job-1/model.bin"
MiB = 1 << 20


@pytest.fixture
def moto_answering_like_s3(monkeypatch):
    """UploadPart and CompleteMultipartUpload of an unknown upload id answer 404 NoSuchUpload, as S3 does."""
    from moto.s3.exceptions import NoSuchUpload
    from moto.s3.models import S3Backend

    def checked(method):
        def call(self, bucket_name, multipart_id, *args, **kwargs):
            if multipart_id not in self.get_bucket(bucket_name).multiparts:
                raise NoSuchUpload(upload_id=multipart_id)
            return method(self, bucket_name, multipart_id, *args, **kwargs)
        return call

    for name in ("upload_part", "complete_multipart_upload"):
        monkeypatch.setattr(S3Backend, name, checked(getattr(S3Backend, name)))


def abort_from_outside(object_store, archiver: Archiver, operation: str, *, nth: int = 1,
                       every_upload: bool = False) -> list[str]:
    """From a second client, abort our upload just before its ``nth`` ``operation`` call (the first upload's
    only, or every upload's). Returns the upload ids aborted."""
    outsider = object_store.client()
    aborted: list[str] = []
    seen: dict[str, int] = {}

    def maybe_abort(params: dict, **_) -> None:
        upload_id = params["UploadId"]
        if upload_id in aborted or (aborted and not every_upload):
            return
        seen[upload_id] = seen.get(upload_id, 0) + 1
        if seen[upload_id] == nth:
            outsider.abort_multipart_upload(Bucket=ARCHIVE_BUCKET, Key=KEY, UploadId=upload_id)
            aborted.append(upload_id)

    archiver.store.client.meta.events.register(f"before-parameter-build.s3.{operation}", maybe_abort)
    return aborted


def test_an_upload_aborted_between_parts_starts_again_moto_answering_like_s3(
        s3_archive, object_store, staging_dir, caplog, moto_answering_like_s3):
    data = payload(16 * MiB + 5, 11)  # 4 parts
    file = staged(staging_dir, data)
    state = StateStore()
    archiver = Archiver(state=state, part_size=PART, max_workers=1)
    aborted = abort_from_outside(object_store, archiver, "UploadPart", nth=3)
    created = count_calls(archiver, "CreateMultipartUpload")

    with caplog.at_level("INFO"):
        manifest = archive(archiver, file)

    assert len(aborted) == 1 and len(created) == 2, "one upload aborted from outside, one new upload"
    assert "vanished" in caplog.text and aborted[0] in caplog.text
    assert body(object_store, KEY) == data and manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert keys(object_store) == ["archive/minimax/job-1/manifest.json", KEY]
    assert open_uploads(object_store) == [] and state.values == {} and not file.path.exists()


def test_an_upload_aborted_before_completion_starts_again_moto_answering_like_s3(
        s3_archive, object_store, staging_dir, moto_answering_like_s3):
    data = payload(11 * MiB, 12)  # 3 parts
    file = staged(staging_dir, data)
    state = StateStore()
    archiver = Archiver(state=state, part_size=PART)
    aborted = abort_from_outside(object_store, archiver, "CompleteMultipartUpload")
    created = count_calls(archiver, "CreateMultipartUpload")
    completed = count_calls(archiver, "CompleteMultipartUpload")

    manifest = archive(archiver, file)

    assert len(aborted) == 1 and len(created) == 2 and len(completed) == 2
    assert body(object_store, KEY) == data and manifest["size_bytes"] == len(data)
    assert open_uploads(object_store) == [] and state.values == {}


def test_uploads_that_keep_vanishing_fail_retryably_then_the_retry_archives_moto_answering_like_s3(
        s3_archive, object_store, staging_dir, moto_answering_like_s3):
    """Every upload is aborted after its first part: 1 + MAX_RESTARTS uploads, then a retryable error that
    names the code and what to check; nothing lands, nothing stays open. The task's retry archives it."""
    data = payload(12 * MiB, 13)  # 3 parts
    file = staged(staging_dir, data)
    state = StateStore()
    first = Archiver(state=state, part_size=PART, max_workers=1)
    aborted = abort_from_outside(object_store, first, "UploadPart", nth=2, every_upload=True)

    with pytest.raises(TransientProviderError) as info:
        archive(first, file)

    assert info.value.code == "NoSuchUpload" and info.value.retryable
    assert "lifecycle" in str(info.value) and str(archive_s3.MAX_RESTARTS) in str(info.value)
    assert len(aborted) == 1 + archive_s3.MAX_RESTARTS
    assert keys(object_store) == [] and open_uploads(object_store) == [] and state.values == {}
    assert file.path.exists(), "the staged bytes stay for the retry"

    retry = Archiver(state=state, part_size=PART, max_workers=1)
    manifest = archive(retry, file)
    assert body(object_store, KEY) == data and manifest["sha256"] == file.sha256
    assert open_uploads(object_store) == [] and state.values == {}


def test_an_upload_aborted_between_parts_on_moto_as_it_is_is_archived_on_the_retry(
        s3_archive, object_store, staging_dir, monkeypatch):
    """moto's own answer (500 for the vanished upload): transient, the upload id stays; the retry's ListParts
    says NoSuchUpload, so it starts a new upload and archives exactly the staged bytes."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore would retry moto's 500 with backoff: same outcome
    data = payload(16 * MiB + 5, 14)
    file = staged(staging_dir, data)
    state = StateStore()
    first = Archiver(state=state, part_size=PART, max_workers=1)
    aborted = abort_from_outside(object_store, first, "UploadPart", nth=3)

    with pytest.raises(TransientProviderError):
        archive(first, file)
    assert len(aborted) == 1 and keys(object_store) == [] and len(state.values) == 1

    retry = Archiver(state=state, part_size=PART, max_workers=1)
    listed = count_calls(retry, "ListParts")
    manifest = archive(retry, file)
    assert listed and body(object_store, KEY) == data and manifest["sha256"] == file.sha256
    assert open_uploads(object_store) == [] and state.values == {}
