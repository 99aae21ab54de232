"""Downloader against the emulator over real HTTP: one test per fault; staging holds the right bytes or nothing."""

from __future__ import annotations

import errno
import hashlib
import logging
import shutil
import traceback
from collections import namedtuple
from pathlib import Path

import pytest
import requests

from artifact_harvest.core.errors import (
    DownloadError,
    FatalDownloadError,
    FatalProviderError,
    InsufficientDiskSpace,
    IntegrityError,
    ProviderChecksumError,
    UnsupportedScheme,
)
from artifact_harvest.core.transfer import Downloader, RemoteFile
from artifact_harvest.core.transfer import pipeline as download_module
from artifact_harvest.core.retry import RetryRule
from artifact_harvest.core.staging import Sidecar

SIZE = 3 * 1024 * 1024 + 123  # not a multiple of any chunk size
SMALL_CHUNK = 64 * 1024  # so bytes received before a drop are kept (a read cut short is lost as a whole)
FAST = RetryRule(attempts=5, base_delay=0.01, max_delay=0.5)
STAGED = ["job-1/model.bin", "job-1/model.bin.meta.json"]  # the verified file and its sidecar


def remote(blob: dict, *, with_md5: bool = True, **changes) -> RemoteFile:
    fields = dict(url=blob["url"], filename=blob["filename"], size=blob["size"], md5=blob["md5"] if with_md5 else None)
    return RemoteFile(**{**fields, **changes})


def route(blob: dict) -> str:
    return f"/blobs/{blob['blob_id']}/"


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def blob_requests(emu, blob: dict) -> list[dict]:
    return emu.control.requests(path=route(blob))


def seed_partial(staging_dir: Path, blob: dict, key: str, nbytes: int) -> Path:
    """What a killed worker leaves behind: the first ``nbytes`` of the file as ``.part``, and its sidecar."""
    resp = requests.get(blob["url"], headers={"Range": f"bytes=0-{nbytes - 1}"}, timeout=10)
    part = staging_dir / key / f"{blob['filename']}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(resp.content)
    Sidecar(resp.headers["ETag"], blob["size"]).save(part.with_suffix(""))
    return part


@pytest.fixture
def blob(emu) -> dict:
    return emu.control.create_blob(SIZE, filename="model.bin")


@pytest.fixture
def downloader(staging_dir) -> Downloader:
    return Downloader(staging_dir, provider="test", retry=FAST, chunk_size=SMALL_CHUNK, progress_interval=0.5)


def test_clean_download_verifies_size_md5_sha256(emu, blob, downloader, staging_dir):
    got = downloader.download(lambda: remote(blob), key="job-1")

    assert got.path == staging_dir / "job-1" / "model.bin"
    assert (got.size, got.md5, got.sha256, got.resumed_from) == (SIZE, blob["md5"], blob["sha256"], 0)
    assert sha256_of(got.path) == blob["sha256"]
    assert files_under(staging_dir) == STAGED


def test_md5_only_computed_when_the_provider_gives_one(emu, blob, downloader):
    got = downloader.download(lambda: remote(blob, with_md5=False), key="job-1")
    assert got.md5 is None and got.sha256 == blob["sha256"]


def test_resume_after_drop_uses_range(emu, blob, downloader, staging_dir):
    emu.control.add_fault(route(blob), kind="drop", after_bytes=1_000_000)

    got = downloader.download(lambda: remote(blob), key="job-1")

    calls = blob_requests(emu, blob)
    assert len(calls) == 2 and "Range" not in calls[0]["headers"]
    assert calls[1]["headers"]["Range"] == f"bytes={got.resumed_from}-"
    assert 0 < got.resumed_from <= 1_000_000
    assert sha256_of(got.path) == blob["sha256"] == got.sha256
    assert files_under(staging_dir) == STAGED


def test_resume_from_partial_left_by_a_killed_worker(emu, blob, downloader, staging_dir):
    seed_partial(staging_dir, blob, "job-1", 1_500_000)

    got = downloader.download(lambda: remote(blob), key="job-1")

    assert [c["headers"].get("Range") for c in blob_requests(emu, blob)][-1] == "bytes=1500000-"
    assert got.resumed_from == 1_500_000 and got.md5 == blob["md5"] and got.sha256 == blob["sha256"]
    assert files_under(staging_dir) == STAGED


def test_server_ignoring_range_restarts_from_zero(emu, blob, downloader, staging_dir):
    seed_partial(staging_dir, blob, "job-1", 1_500_000)
    emu.control.add_fault(route(blob), kind="ignore_range")

    got = downloader.download(lambda: remote(blob), key="job-1")

    calls = blob_requests(emu, blob)
    assert calls[-1]["headers"]["Range"] == "bytes=1500000-" and calls[-1]["status"] == 200
    assert got.resumed_from == 0 and got.size == SIZE
    assert sha256_of(got.path) == blob["sha256"] and got.md5 == blob["md5"]


def test_5xx_burst_then_success(emu, blob, downloader):
    emu.control.add_fault(route(blob), kind="status", status=503, times=3)

    got = downloader.download(lambda: remote(blob), key="job-1")

    assert [c["status"] for c in blob_requests(emu, blob)] == [503, 503, 503, 200]
    assert sha256_of(got.path) == blob["sha256"]


def test_5xx_forever_gives_up_with_retryable_error(emu, blob, downloader, staging_dir):
    emu.control.add_fault(route(blob), kind="status", status=500, times=-1)

    with pytest.raises(DownloadError) as info:
        downloader.download(lambda: remote(blob), key="job-1")

    assert not isinstance(info.value, FatalDownloadError)
    assert len(blob_requests(emu, blob)) == FAST.attempts
    assert files_under(staging_dir) == []


def test_429_retry_after_is_honoured(emu, blob, staging_dir):
    emu.control.add_fault(route(blob), kind="status", status=429, retry_after=1)
    patient = Downloader(staging_dir, retry=RetryRule(attempts=3, base_delay=0.01, max_delay=5))

    got = patient.download(lambda: remote(blob), key="job-1")

    first, second = blob_requests(emu, blob)
    assert (first["status"], second["status"]) == (429, 200)
    assert second["time"] - first["time"] >= 1.0
    assert sha256_of(got.path) == blob["sha256"]


def test_404_fails_at_once(emu, blob, downloader, staging_dir):
    emu.control.add_fault(route(blob), kind="status", status=404)

    with pytest.raises(FatalDownloadError, match="HTTP 404"):
        downloader.download(lambda: remote(blob), key="job-1")

    assert len(blob_requests(emu, blob)) == 1
    assert files_under(staging_dir) == []


def test_expired_url_mid_download_gets_a_fresh_one_and_resumes(emu, blob, staging_dir):
    """Attempt 1 drops and gives up (partial kept); attempt 2's URL has expired: refresh, then resume."""
    twin = emu.control.create_blob(SIZE, filename="model.bin", seed=blob["seed"])  # same bytes, new URL
    assert twin["sha256"] == blob["sha256"]
    emu.control.add_fault(route(blob), kind="drop", after_bytes=1_000_000)
    one_try = Downloader(staging_dir, retry=RetryRule(attempts=1), chunk_size=SMALL_CHUNK)
    with pytest.raises(DownloadError):
        one_try.download(lambda: remote(blob), key="job-1")
    kept = (staging_dir / "job-1" / "model.bin.part").stat().st_size
    assert 0 < kept <= 1_000_000

    emu.control.add_fault(route(blob), kind="expire")
    urls = iter([remote(blob), remote(twin)])
    asked = []
    got = Downloader(staging_dir, retry=FAST).download(lambda: asked.append(1) or next(urls), key="job-1")

    assert len(asked) == 2
    assert blob_requests(emu, blob)[-1]["status"] == 403
    assert blob_requests(emu, twin)[-1]["headers"]["Range"] == f"bytes={kept}-"
    assert got.resumed_from == kept and got.sha256 == blob["sha256"] and got.md5 == blob["md5"]
    assert files_under(staging_dir) == STAGED


def test_url_refreshes_are_bounded(emu, blob, staging_dir):
    emu.control.add_fault(route(blob), kind="expire", times=-1)
    refresher = Downloader(staging_dir, retry=FAST, max_url_refreshes=2)

    with pytest.raises(FatalDownloadError, match="still refused after 2 fresh URLs"):
        refresher.download(lambda: remote(blob), key="job-1")

    assert len(blob_requests(emu, blob)) == 3


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"md5": "0" * 32}, "md5 [0-9a-f]{32}, the provider's md5 is 0{32}"),
        ({"size": SIZE + 1}, f"size {SIZE} bytes, the provider announced {SIZE + 1}"),
        ({"size": SIZE - 1}, f"size {SIZE} bytes, the provider announced {SIZE - 1}"),
    ],
    ids=["wrong-expected-md5", "short-of-expected-size", "longer-than-expected-size"],
)
def test_provider_disagreeing_twice_from_byte_0_is_fatal(emu, blob, downloader, staging_dir, changes, problem):
    with pytest.raises(ProviderChecksumError, match=f"first pass {problem}; second pass {problem}") as info:
        downloader.download(lambda: remote(blob, **changes), key="job-1")

    assert isinstance(info.value, FatalProviderError)  # the same bytes twice: a retry cannot help
    assert [c["headers"].get("Range") for c in blob_requests(emu, blob)] == [None, None]  # two clean passes
    assert files_under(staging_dir) == []


def test_one_corrupted_body_is_fetched_once_more_and_archived_correctly(emu, blob, downloader, staging_dir):
    emu.control.add_fault(route(blob), kind="corrupt")

    got = downloader.download(lambda: remote(blob), key="job-1")

    assert [c["headers"].get("Range") for c in blob_requests(emu, blob)] == [None, None]
    assert (got.md5, got.sha256, got.resumed_from) == (blob["md5"], blob["sha256"], 0)
    assert sha256_of(got.path) == blob["sha256"]
    assert files_under(staging_dir) == STAGED


def test_the_same_wrong_md5_twice_is_fatal_and_quotes_both_digests(emu, blob, downloader, staging_dir):
    flipped = bytearray(requests.get(blob["url"], timeout=10).content)
    flipped[SIZE // 2] ^= 0xFF
    wrong = hashlib.md5(flipped).hexdigest()
    emu.control.clear_requests()
    emu.control.add_fault(route(blob), kind="corrupt", times=2)  # the same byte flipped on both passes

    with pytest.raises(ProviderChecksumError) as info:
        downloader.download(lambda: remote(blob), key="job-1")

    message = str(info.value)
    assert message.count(f"md5 {wrong}, the provider's md5 is {blob['md5']}") == 2
    assert "first pass" in message and "second pass" in message
    assert len(blob_requests(emu, blob)) == 2
    assert files_under(staging_dir) == []


def test_two_different_wrong_digests_stay_retryable(emu, blob, downloader, staging_dir):
    emu.control.add_fault(route(blob), kind="corrupt", offset=100)
    emu.control.add_fault(route(blob), kind="corrupt", offset=200)

    with pytest.raises(IntegrityError, match="different wrong bytes") as info:
        downloader.download(lambda: remote(blob), key="job-1")

    assert not isinstance(info.value, FatalProviderError)  # the link corrupts; another try may get through
    assert files_under(staging_dir) == []


def test_mismatch_after_a_resume_restarts_clean_in_the_same_task(emu, blob, downloader, staging_dir):
    part = seed_partial(staging_dir, blob, "job-1", 1024 * 1024)
    part.write_bytes(b"\0" * part.stat().st_size)  # the partial bytes are not the provider's

    got = downloader.download(lambda: remote(blob), key="job-1")

    assert [c["headers"].get("Range") for c in blob_requests(emu, blob)][-2:] == ["bytes=1048576-", None]
    assert (got.md5, got.resumed_from) == (blob["md5"], 0)
    assert sha256_of(got.path) == blob["sha256"]
    assert files_under(staging_dir) == STAGED


def test_file_rebuilt_under_a_resume_restarts_and_stages_the_new_file_whole(emu, blob, downloader, staging_dir):
    """No md5 (FlightHub 2, MiniMax): only If-Range and the ETag can tell the two versions apart."""
    old_etag = emu.control.blob(blob["blob_id"])["etag"]
    emu.control.add_fault(route(blob), kind="drop", after_bytes=1_000_000)
    emu.control.add_fault(route(blob), kind="rebuild")  # after the first (cut) body: new bytes, same URL

    got = downloader.download(lambda: remote(blob, with_md5=False), key="job-1")

    now = emu.control.blob(blob["blob_id"])
    assert now["sha256"] != blob["sha256"] and now["etag"] != old_etag
    first, resume = blob_requests(emu, blob)
    assert resume["headers"]["If-Range"] == old_etag and resume["status"] == 200  # whole new file, no splice
    assert got.resumed_from == 0 and got.sha256 == now["sha256"] == sha256_of(got.path)
    assert files_under(staging_dir) == STAGED


def test_resume_sends_if_range_with_the_first_etag(emu, blob, downloader):
    emu.control.add_fault(route(blob), kind="drop", after_bytes=1_000_000)

    got = downloader.download(lambda: remote(blob, with_md5=False), key="job-1")

    first, resume = blob_requests(emu, blob)
    assert "If-Range" not in first["headers"]
    assert resume["headers"]["If-Range"] == emu.control.blob(blob["blob_id"])["etag"] and resume["status"] == 206
    assert got.resumed_from > 0 and sha256_of(got.path) == blob["sha256"]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.bin", "/etc/passwd"])
def test_non_http_scheme_refused(staging_dir, url):
    with pytest.raises(UnsupportedScheme):
        Downloader(staging_dir).download(lambda: RemoteFile(url, "a.bin"), key="job-1")
    assert files_under(staging_dir) == []


def fake_free(monkeypatch, free: int) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * SIZE, 10 * SIZE - free, free))


def test_insufficient_disk_refused_retryably(emu, blob, downloader, staging_dir, monkeypatch):
    fake_free(monkeypatch, 1000)

    with pytest.raises(InsufficientDiskSpace, match=f"1000 bytes free but {SIZE} more are needed") as info:
        downloader.download(lambda: remote(blob), key="job-1")

    assert not isinstance(info.value, FatalProviderError)
    assert f"free at least {SIZE - 1000} bytes under {staging_dir}" in str(info.value)
    assert blob_requests(emu, blob) == []
    assert files_under(staging_dir) == []


def test_too_little_disk_for_the_rest_keeps_the_partial_and_the_retry_resumes(
    emu, blob, downloader, staging_dir, monkeypatch
):
    kept = 2_000_000
    seed_partial(staging_dir, blob, "job-1", kept)
    fake_free(monkeypatch, 5000)

    with pytest.raises(InsufficientDiskSpace, match=f"{SIZE - kept} more are needed .*{kept} already staged") as info:
        downloader.download(lambda: remote(blob, size=None, md5=None), key="job-1")  # total from the sidecar

    assert not isinstance(info.value, FatalProviderError)
    assert files_under(staging_dir) == ["job-1/model.bin.meta.json", "job-1/model.bin.part"]
    assert (staging_dir / "job-1" / "model.bin.part").stat().st_size == kept
    monkeypatch.undo()  # space freed
    got = downloader.download(lambda: remote(blob), key="job-1")
    assert got.resumed_from == kept and sha256_of(got.path) == blob["sha256"]


class _FillsUp:
    """A staging file on a disk that fills up after ``room`` bytes: no server can produce ENOSPC."""

    def __init__(self, file, room: int) -> None:
        self._file, self._room = file, room

    def write(self, data: bytes) -> int:
        if len(data) > self._room:
            self._file.write(data[: self._room])
            self._room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._file.write(data)

    def __getattr__(self, name: str):
        return getattr(self._file, name)


def test_disk_full_mid_download_keeps_the_partial_for_the_retry(emu, blob, downloader, staging_dir, monkeypatch):
    room = SIZE // 2 + 7
    def staging_open(path, mode, **kwargs):
        return _FillsUp(open(path, mode, **kwargs), room) if "a" in mode else open(path, mode, **kwargs)

    monkeypatch.setattr(download_module, "open", staging_open, raising=False)
    with pytest.raises(DownloadError, match="cannot write to staging .*No space left on device") as info:
        downloader.download(lambda: remote(blob), key="job-1")
    assert not isinstance(info.value, FatalProviderError)  # Airflow retries, and the retry resumes
    part = staging_dir / "job-1" / "model.bin.part"
    assert part.stat().st_size == room

    monkeypatch.undo()  # space freed
    got = downloader.download(lambda: remote(blob), key="job-1")

    assert (got.resumed_from, got.sha256, got.md5) == (room, blob["sha256"], blob["md5"])
    assert sha256_of(got.path) == blob["sha256"]
    assert files_under(staging_dir) == STAGED


def test_signed_query_never_in_logs_or_errors(emu, blob, downloader, caplog):
    signature = blob["url"].split("Signature=", 1)[1]
    emu.control.add_fault(route(blob), kind="status", status=503, times=2)
    emu.control.add_fault(route(blob), kind="expire")
    caplog.set_level(logging.DEBUG)  # urllib3 logs request lines at DEBUG

    downloader.download(lambda: remote(blob), key="job-1")
    emu.control.add_fault(route(blob), kind="status", status=404)
    with pytest.raises(FatalDownloadError) as info:
        downloader.download(lambda: remote(blob), key="job-2")

    error_text = "".join(traceback.format_exception(info.value))
    assert "503" in caplog.text and "Request has expired" in caplog.text and "HTTP 404" in error_text
    assert "/blobs/" in caplog.text  # the redacted URL is still there to help debugging
    assert signature not in caplog.text and signature not in error_text
    assert "Expires=" not in caplog.text and "Expires=" not in error_text


@pytest.mark.parametrize("evil", ["../../etc/passwd", "/etc/passwd", "..\\..\\evil.bin", "a/../../b.bin"])
def test_untrusted_filename_stays_inside_staging(emu, blob, downloader, staging_dir, evil):
    got = downloader.download(lambda: remote(blob, filename=evil), key="../../job-1")

    assert got.path.resolve().is_relative_to(staging_dir.resolve())
    assert got.path.parent.parent == staging_dir
    assert sha256_of(got.path) == blob["sha256"]


@pytest.mark.parametrize("evil", ["..", ".", "", "../..", "a/.."])
def test_unusable_filename_rejected(emu, blob, downloader, staging_dir, evil):
    with pytest.raises(FatalProviderError, match="unusable file name"):
        downloader.download(lambda: remote(blob, filename=evil), key="job-1")
    assert files_under(staging_dir) == []


def test_finished_file_left_in_staging_is_verified_and_reused(emu, blob, downloader):
    first = downloader.download(lambda: remote(blob), key="job-1")
    again = downloader.download(lambda: remote(blob), key="job-1")

    assert len(blob_requests(emu, blob)) == 1
    assert again.sha256 == first.sha256 and again.md5 == blob["md5"]


def test_file_reused_from_staging_is_re_verified_against_its_sidecar(emu, blob, downloader, staging_dir):
    """No md5 from the provider: the digests recorded at verification time vouch for a staged file."""
    first = downloader.download(lambda: remote(blob, with_md5=False), key="job-1")
    sidecar = Sidecar.path_for(first.path).read_text()
    assert first.sha256 in sidecar and "Signature" not in sidecar and "Expires" not in sidecar
    with open(first.path, "r+b") as f:  # the disk lost a write after the crash
        f.seek(1000)
        f.write(b"\0" * 10)

    again = downloader.download(lambda: remote(blob, with_md5=False), key="job-1")

    assert len(blob_requests(emu, blob)) == 2  # the damaged copy was not trusted
    assert again.sha256 == blob["sha256"] == sha256_of(again.path)


def test_staged_file_nothing_vouches_for_is_downloaded_again(emu, blob, downloader, staging_dir):
    first = downloader.download(lambda: remote(blob, with_md5=False), key="job-1")
    Sidecar.remove(first.path)  # e.g. a file left by an older version of the downloader

    again = downloader.download(lambda: remote(blob, with_md5=False), key="job-1")

    assert len(blob_requests(emu, blob)) == 2 and again.sha256 == blob["sha256"]
    assert files_under(staging_dir) == STAGED


def test_size_comes_from_the_server_when_the_provider_announces_none(emu, blob, downloader, staging_dir):
    """FlightHub 2 and MiniMax give no size: Content-Length, then Content-Range's total, are checked."""
    emu.control.add_fault(route(blob), kind="drop", after_bytes=1_000_000)

    got = downloader.download(lambda: remote(blob, size=None, md5=None), key="job-1")

    assert Sidecar.load(got.path).total == SIZE == got.size
    assert got.resumed_from > 0 and sha256_of(got.path) == blob["sha256"]
