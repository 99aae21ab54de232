"""HashPipeline: the caller writes, each digest runs on its own thread, ring buffers go round, durable pages drop.

Real files and real hashes in a temp dir; only the fdatasync/fadvise calls are recorded (wrapped, not faked)."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from artifact_harvest.core.transfer import pipeline
from artifact_harvest.core.transfer.pipeline import RING, HashPipeline

CHUNK = 64 * 1024


def _data(n: int) -> bytes:
    return hashlib.shake_256(b"seed").digest(n)


def _fed_from_ring(pipe: HashPipeline, data: bytes) -> set[int]:
    """Feed ``data`` the way the stream does: read into ``buffer()``, feed the slice; returns the buffers used."""
    used = set()
    for at in range(0, len(data), CHUNK):
        buf = pipe.buffer()
        used.add(id(buf.obj))
        piece = data[at : at + CHUNK]
        buf[: len(piece)] = piece
        pipe.feed(buf[: len(piece)])
    return used


@pytest.mark.parametrize("with_md5", [True, False])
def test_file_and_digests_match_what_was_fed(tmp_path, with_md5):
    part, data = tmp_path / "f.part", _data(40 * CHUNK + 123)
    pipe = HashPipeline(part, with_md5, chunk_size=CHUNK)
    try:
        used = _fed_from_ring(pipe, data[: 30 * CHUNK])
        pipe.feed(data[30 * CHUNK :])  # plain bytes (not a ring buffer) go through the same chain
        assert pipe.sync(durable=True) == len(data)
        assert pipe.hexdigest("sha256") == hashlib.sha256(data).hexdigest()
        assert pipe.hexdigest("md5") == (hashlib.md5(data).hexdigest() if with_md5 else None)
    finally:
        pipe.close()
    assert part.read_bytes() == data
    assert len(used) <= RING  # 30 chunks through at most RING buffers: memory is bounded


def test_a_buffer_not_fed_is_lent_again(tmp_path):
    pipe = HashPipeline(tmp_path / "f.part", False, chunk_size=CHUNK)
    try:
        first = pipe.buffer()
        first[:3] = b"abc"  # a read that ended in an error: nothing fed
        again = pipe.buffer()
        assert again.obj is first.obj
        pipe.feed(again[:3])
        assert pipe.hexdigest("sha256") == hashlib.sha256(b"abc").hexdigest()
    finally:
        pipe.close()


def test_restart_forgets_file_and_hashes(tmp_path):
    part = tmp_path / "f.part"
    pipe = HashPipeline(part, True, chunk_size=CHUNK)
    try:
        _fed_from_ring(pipe, _data(5 * CHUNK))
        pipe.restart()
        _fed_from_ring(pipe, b"new bytes")
        assert pipe.sync() == 9
        assert pipe.hexdigest("md5") == hashlib.md5(b"new bytes").hexdigest()
    finally:
        pipe.close()
    assert part.read_bytes() == b"new bytes"


def test_rehash_reads_the_staged_bytes_into_the_ring(tmp_path):
    part, data = tmp_path / "f.part", _data(7 * CHUNK + 5)
    part.write_bytes(data)
    pipe = HashPipeline(None, True, chunk_size=CHUNK)
    try:
        assert pipe.rehash(part) == len(data)
        assert (pipe.hexdigest("sha256"), pipe.hexdigest("md5")) == (
            hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()
        )
    finally:
        pipe.close()


@pytest.fixture
def syscalls(monkeypatch):
    """Every fdatasync and POSIX_FADV_DONTNEED, in the order they happened (the real calls still run)."""
    calls, lock = [], threading.Lock()
    fdatasync, fadvise = os.fdatasync, os.posix_fadvise

    def record_fdatasync(fd):
        fdatasync(fd)
        with lock:
            calls.append(("fdatasync", os.fstat(fd).st_size))

    def record_fadvise(fd, offset, length, advice):
        fadvise(fd, offset, length, advice)
        if advice == os.POSIX_FADV_DONTNEED:
            with lock:
                calls.append(("drop", offset, offset + length))

    monkeypatch.setattr(pipeline.os, "posix_fadvise", record_fadvise)
    monkeypatch.setattr(os, "fdatasync", record_fdatasync)
    return calls


def test_pages_leave_the_cache_only_once_durable(tmp_path, syscalls):
    part, data = tmp_path / "f.part", _data(50 * CHUNK)
    part.write_bytes(b"x" * 1000)  # a resumed partial: its pages are not the stream's to drop
    pipe = HashPipeline(part, False, 8 * CHUNK, chunk_size=CHUNK, drop_written=True)
    try:
        _fed_from_ring(pipe, data)
        pipe.sync(durable=True)
    finally:
        pipe.close()
    drops = [call[1:] for call in syscalls if call[0] == "drop"]
    assert drops and drops[0][0] == 1000  # from where this pipe began writing
    assert all(a[1] == b[0] for a, b in zip(drops, drops[1:]))  # contiguous, in order
    for i, call in enumerate(syscalls):
        if call[0] == "drop":  # the fdatasync just before it covered the dropped range
            assert syscalls[i - 1][0] == "fdatasync" and syscalls[i - 1][1] >= call[2]
    assert part.read_bytes() == b"x" * 1000 + data


def test_pages_stay_cached_when_dropping_is_off(tmp_path, syscalls):
    pipe = HashPipeline(tmp_path / "f.part", False, 8 * CHUNK, chunk_size=CHUNK, drop_written=False)
    try:
        _fed_from_ring(pipe, _data(50 * CHUNK))
        pipe.sync(durable=True)
    finally:
        pipe.close()
    assert [call for call in syscalls if call[0] == "fdatasync"]  # the background syncs still ran
    assert not [call for call in syscalls if call[0] == "drop"]


def test_bytes_fed_wait_for_the_digests_too(tmp_path, monkeypatch):
    """The ranged fetch feeds bytes it read back: they count against the same bound as ring buffers."""
    gate, peak, now = threading.Event(), [0], [0]
    lock = threading.Lock()
    real_new = hashlib.new

    class SlowSha:
        def __init__(self) -> None:
            self._h = real_new("sha256")

        def update(self, data) -> None:
            gate.wait(10)
            self._h.update(data)
            with lock:
                now[0] -= 1

        def hexdigest(self) -> str:
            return self._h.hexdigest()

    monkeypatch.setattr(pipeline.hashlib, "new", lambda name: SlowSha() if name == "sha256" else real_new(name))
    pipe = HashPipeline(None, False, chunk_size=CHUNK)
    feeder_done = threading.Event()

    def feed_all() -> None:
        for _ in range(3 * RING):
            with lock:
                now[0] += 1
                peak[0] = max(peak[0], now[0])
            pipe.feed(b"x" * 10, to_file=False)
        feeder_done.set()

    feeder = threading.Thread(target=feed_all, daemon=True)
    feeder.start()
    assert not feeder_done.wait(0.3)  # held back while nothing is digested
    gate.set()
    feeder.join(10)
    try:
        assert pipe.hexdigest("sha256") == hashlib.sha256(b"x" * 10 * 3 * RING).hexdigest()
        assert peak[0] <= RING + 1  # queued or being digested, plus the one feed() waiting for its place
    finally:
        pipe.close()
