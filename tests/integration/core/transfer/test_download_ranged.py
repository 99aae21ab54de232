"""The parallel ranged fetch (core/transfer/ranged.py) against the emulator over real HTTP: each test asserts that the
staged file's sha256 equals what the emulator serves."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from artifact_harvest.core.transfer import Downloader, RemoteFile
from artifact_harvest.core.retry import RetryRule
from artifact_harvest.core.staging import Sidecar

SIZE = 4 * 1024 * 1024 + 321
PIECE = 256 * 1024
NOT_THE_PROBE = r"^bytes=(?!0-0$)"  # every range request except the one-byte probe
FAST = RetryRule(attempts=5, base_delay=0.01, max_delay=0.2)


def remote(blob: dict, **changes) -> RemoteFile:
    return RemoteFile(**{"url": blob["url"], "filename": blob["filename"], "size": blob["size"], "md5": None,
                         **changes})


def route(blob: dict) -> str:
    return f"/blobs/{blob['blob_id']}/"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ranges(emu, blob: dict) -> list[str | None]:
    return [c["headers"].get("Range") for c in emu.control.requests(path=route(blob))]


@pytest.fixture
def blob(emu) -> dict:
    return emu.control.create_blob(SIZE, filename="model.bin")


@pytest.fixture
def parallel(staging_dir) -> Downloader:
    return Downloader(staging_dir, provider="test", retry=FAST, chunk_size=64 * 1024, progress_interval=0.2,
                      connections=4, piece_size=PIECE, parallel_threshold=1 << 20, parallel_after=0)


def test_big_file_is_fetched_in_pieces_with_if_range_and_verified(emu, blob, parallel, staging_dir, caplog):
    caplog.set_level(logging.INFO)
    emu.control.configure(per_connection_rate=1 << 20)  # ~1 s in all: progress lines get written
    got = parallel.download(lambda: remote(blob, md5=blob["md5"]), key="job-1")

    calls = emu.control.requests(path=route(blob))
    assert calls[0]["headers"]["Range"] == "bytes=0-0"  # the probe
    pieces = sorted(c["headers"]["Range"] for c in calls[1:])
    expected = sorted(f"bytes={a}-{min(a + PIECE, SIZE) - 1}" for a in range(0, SIZE, PIECE))
    assert pieces == expected and all(c["status"] == 206 for c in calls)
    assert {c["headers"]["If-Range"] for c in calls[1:]} == {emu.control.blob(blob["blob_id"])["etag"]}
    assert (got.sha256, got.md5, got.size) == (blob["sha256"], blob["md5"], SIZE) and sha256_of(got.path) == blob["sha256"]
    assert sorted(p.name for p in got.path.parent.iterdir()) == ["model.bin", "model.bin.meta.json"]
    assert "connections" in caplog.text and "%" in caplog.text and "MB/s" in caplog.text


def adaptive(staging_dir) -> Downloader:
    """The default behaviour at test scale: one stream first, ranges once 1 MiB and half a second show it network-bound."""
    return Downloader(staging_dir, provider="test", retry=FAST, chunk_size=64 * 1024, progress_interval=0,
                      connections=4, piece_size=PIECE, parallel_threshold=1 << 20, parallel_after=1 << 20)


def test_a_stream_held_back_by_the_link_goes_on_as_ranges_from_where_it_is(emu, staging_dir, caplog, monkeypatch):
    from artifact_harvest.core.transfer.flow import FlowMeter

    monkeypatch.setattr(FlowMeter, "IDLE", 0.0)  # the rest of the suite may keep the cores busy; the wait decides
    caplog.set_level(logging.INFO)
    big = emu.control.create_blob(3 * SIZE, filename="model.bin")
    emu.control.configure(per_connection_rate=1 << 20)  # a per-flow cap: the stream mostly waits on recv

    got = adaptive(staging_dir).download(lambda: remote(big, md5=big["md5"]), key="job-1")

    asked = ranges(emu, big)
    assert asked[0] is None and asked[1] == "bytes=0-0"  # the stream from byte 0, then the probe
    starts = sorted(int(r.split("=")[1].split("-")[0]) for r in asked[2:])
    first = starts[0]
    assert first >= 1 << 20 and first % PIECE == 0  # the stream's bytes are kept, not fetched again
    assert starts == list(range(first, big["size"], PIECE))  # every later piece once
    assert "waits on the network" in caplog.text and "as 4 ranges" in caplog.text
    assert (got.sha256, got.md5, got.resumed_from) == (big["sha256"], big["md5"], 0)
    assert sha256_of(got.path) == big["sha256"]


def test_a_stream_held_back_by_this_machine_stays_one_stream(emu, staging_dir, monkeypatch):
    """A slow staging disk (no server can make one): the reader never waits on the network, so more
    connections would not help, and none are opened."""
    from artifact_harvest.core.transfer import pipeline

    big = emu.control.create_blob(2 * SIZE, filename="model.bin")
    feed = pipeline.HashPipeline.feed
    monkeypatch.setattr(pipeline.HashPipeline, "feed", lambda self, chunk, **kw: time.sleep(0.01) or feed(self, chunk, **kw))

    got = adaptive(staging_dir).download(lambda: remote(big), key="job-1")

    assert ranges(emu, big) == [None]  # one request, not even a probe
    assert sha256_of(got.path) == big["sha256"] == got.sha256


def test_a_drop_in_one_piece_costs_that_piece_only(emu, blob, parallel):
    emu.control.add_fault(route(blob), kind="drop", range=f"^bytes={2 * PIECE}-", after_bytes=100_000)

    got = parallel.download(lambda: remote(blob), key="job-1")

    requested = ranges(emu, blob)
    assert requested.count(f"bytes={2 * PIECE}-{3 * PIECE - 1}") == 1
    starts = [int(r.split("=")[1].split("-")[0]) for r in requested[1:]]
    resumed = [a for a in starts if 2 * PIECE < a < 3 * PIECE]
    assert len(resumed) == 1  # the rest of that one piece, from what had arrived
    assert len(requested) == 1 + -(-SIZE // PIECE) + 1  # the probe, every piece once, one resume
    assert sha256_of(got.path) == blob["sha256"] == got.sha256


def test_file_rebuilt_between_pieces_restarts_whole_never_a_splice(emu, blob, parallel):
    emu.control.add_fault(route(blob), kind="rebuild", times=3)  # the probe and two pieces, then a new version

    got = parallel.download(lambda: remote(blob), key="job-1")

    now = emu.control.blob(blob["blob_id"])
    assert now["sha256"] != blob["sha256"]
    calls = emu.control.requests(path=route(blob))
    second_probe = [c["headers"]["Range"] for c in calls].index("bytes=0-0", 1)  # the whole file started over
    assert {c["headers"]["If-Range"] for c in calls[second_probe + 1:]} == {now["etag"]}
    assert sorted(c["headers"]["Range"] for c in calls[second_probe + 1:]) == sorted(
        f"bytes={a}-{min(a + PIECE, SIZE) - 1}" for a in range(0, SIZE, PIECE))  # all of it from the new version
    assert got.sha256 == now["sha256"] == sha256_of(got.path) and got.resumed_from == 0


def test_server_ignoring_ranges_falls_back_to_one_stream(emu, blob, parallel):
    emu.control.add_fault(route(blob), kind="ignore_range", times=-1)

    got = parallel.download(lambda: remote(blob), key="job-1")

    assert ranges(emu, blob) == ["bytes=0-0", None]
    assert sha256_of(got.path) == blob["sha256"] == got.sha256


def test_url_expiring_during_a_parallel_download_is_refreshed_once_for_all(emu, blob, parallel, staging_dir, caplog):
    twin = emu.control.create_blob(SIZE, filename="model.bin", seed=blob["seed"])  # same bytes, new URL
    emu.control.add_fault(route(blob), kind="expire", range=NOT_THE_PROBE, times=-1)
    urls = iter([remote(blob), remote(twin)])
    asked = []

    got = parallel.download(lambda: asked.append(1) or next(urls), key="job-1")

    assert len(asked) == 2  # one refresh, whatever the number of connections that saw the 403
    assert "asking the provider for a fresh URL (for all connections)" in caplog.text
    for url in (blob["url"], twin["url"]):  # signed queries stay out of logs and the control file
        signature = url.split("Signature=", 1)[1]
        assert signature not in caplog.text
        assert signature not in Sidecar.path_for(got.path).read_text()
    assert sum(1 for c in emu.control.requests(path=route(blob)) if c["status"] == 403) >= 1
    assert sha256_of(got.path) == blob["sha256"] == got.sha256


def test_429_lowers_the_number_of_connections(emu, blob, parallel, caplog):
    emu.control.add_fault(route(blob), kind="status", status=429, retry_after=0, range=NOT_THE_PROBE, times=2)

    got = parallel.download(lambda: remote(blob), key="job-1")

    assert "down to 3 connections" in caplog.text and "down to 2 connections" in caplog.text
    assert sha256_of(got.path) == blob["sha256"] == got.sha256


KILLED_RUN = """
import sys
from pathlib import Path
from artifact_harvest.core.transfer import Downloader, RemoteFile
Downloader(Path(sys.argv[1]), connections=4, piece_size={piece}, parallel_threshold=1 << 20, parallel_after=0,
           progress_interval=0).download(lambda: RemoteFile(sys.argv[2], "model.bin", {size}), key="job-1")
"""


def test_a_killed_download_resumes_with_only_the_missing_pieces(emu, blob, parallel, staging_dir):
    emu.control.configure(per_connection_rate=256 * 1024)  # one piece a second per connection
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN.format(piece=PIECE, size=SIZE),
                             str(staging_dir), blob["url"]], env={**os.environ})
    final = staging_dir / "job-1" / "model.bin"
    deadline = time.monotonic() + 60
    while not ((s := Sidecar.load(final)) and s.done and len(s.done) >= 4):
        assert time.monotonic() < deadline and proc.poll() is None, "no pieces recorded in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    finished = set(Sidecar.load(final).done)
    emu.control.configure(per_connection_rate=0)
    emu.control.clear_requests()

    got = parallel.download(lambda: remote(blob), key="job-1")

    again = {int(r.split("=")[1].split("-")[0]) // PIECE for r in ranges(emu, blob)[1:]}
    assert again and not again & finished  # nothing finished was fetched twice
    assert again | finished >= set(range(-(-SIZE // PIECE)))
    assert sha256_of(got.path) == blob["sha256"] == got.sha256


def test_disk_check_covers_the_whole_file_before_any_piece(emu, blob, parallel, staging_dir, monkeypatch):
    import shutil
    from collections import namedtuple

    from artifact_harvest.core.errors import InsufficientDiskSpace
    from artifact_harvest.core.errors import FatalProviderError

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * SIZE, 9 * SIZE, SIZE - 1))

    with pytest.raises(InsufficientDiskSpace, match=f"{SIZE - 1} bytes free but {SIZE} more are needed") as info:
        parallel.download(lambda: remote(blob), key="job-1")

    assert not isinstance(info.value, FatalProviderError)
    assert ranges(emu, blob) == ["bytes=0-0"]  # the probe, then refused before any piece or allocation
    assert [p for p in staging_dir.rglob("*") if p.is_file()] == []
