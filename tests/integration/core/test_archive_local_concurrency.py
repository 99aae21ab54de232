"""The local archive under real concurrent writers (processes and threads): one data file, one manifest,
and they agree; a file found without a manifest is verified before anything is written."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
from pathlib import Path

import pytest

from artifact_harvest.core.archive import ArchiveConflict, Archiver
from tests.integration.core.test_archive import all_files, archive, staged

MiB = 1 << 20


def _archive_in_process(root: str, staging: str, data: bytes, start, results) -> None:
    file = staged(Path(staging), data)
    start.wait(timeout=60)
    try:
        results.put(("ok", archive(Archiver(root), file)["sha256"], file.path.exists()))
    except ArchiveConflict as exc:
        results.put(("conflict", str(exc), file.path.exists()))


def _race(root: Path, tmp_path: Path, payloads: list[bytes]) -> list[tuple]:
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter each, like two workers
    start, results = ctx.Barrier(len(payloads)), ctx.Queue()
    procs = [ctx.Process(target=_archive_in_process, args=(str(root), str(tmp_path / f"staging{i}"), data, start,
                                                           results)) for i, data in enumerate(payloads)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return outcomes


def _archived(root: Path) -> tuple[bytes, dict]:
    folder = root / "minimax/job-1"
    return (folder / "model.bin").read_bytes(), json.loads((folder / "manifest.json").read_text())


def test_concurrent_processes_same_bytes_one_copy_one_manifest(archive_root, tmp_path):
    data = b"x" * (3 * MiB)
    outcomes = _race(archive_root, tmp_path, [data, data, data])

    assert [o[0] for o in outcomes] == ["ok"] * 3
    stored, manifest = _archived(archive_root)
    assert stored == data and manifest["sha256"] == hashlib.sha256(data).hexdigest() == outcomes[0][1]
    assert all_files(archive_root) == ["minimax/job-1/manifest.json", "minimax/job-1/model.bin"]
    assert not any(o[2] for o in outcomes), "every staged copy was removed"


def test_concurrent_processes_different_bytes_one_wins_the_others_conflict(archive_root, tmp_path):
    payloads = [bytes([i]) * MiB for i in range(3)]
    outcomes = _race(archive_root, tmp_path, payloads)

    assert sorted(o[0] for o in outcomes) == ["conflict", "conflict", "ok"], outcomes
    stored, manifest = _archived(archive_root)
    assert stored in payloads and hashlib.sha256(stored).hexdigest() == manifest["sha256"]
    for kind, text, kept in outcomes:
        if kind == "conflict":
            assert manifest["sha256"] in text and kept, "the loser names the archived sha256 and keeps its copy"
    assert all_files(archive_root) == ["minimax/job-1/manifest.json", "minimax/job-1/model.bin"]


def test_concurrent_threads_through_the_copy_path(archive_root, tmp_path, monkeypatch):
    """Staging on another filesystem (link fails with EXDEV): copy to a temp name, fsync, link; no temp left."""
    import errno
    import os

    from artifact_harvest.core import archive_local

    real_link = os.link

    def cross_device(src, dst, *args, **kwargs):
        if ".tmp" not in Path(src).name:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(archive_local.os, "link", cross_device)
    data = b"y" * (2 * MiB)
    files = [staged(tmp_path / f"staging{i}", data) for i in range(4)]
    start, results = threading.Barrier(4), []

    def run(file):
        start.wait(timeout=30)
        results.append(archive(Archiver(), file)["sha256"])

    threads = [threading.Thread(target=run, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert results == [hashlib.sha256(data).hexdigest()] * 4
    assert all_files(archive_root) == ["minimax/job-1/manifest.json", "minimax/job-1/model.bin"]
    assert not list(archive_root.rglob(".*"))


def test_file_without_manifest_is_verified_never_overwritten(archive_root, staging_dir):
    target = archive_root / "minimax/job-1/model.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"left by a crash")

    file = staged(staging_dir, b"a new download")
    with pytest.raises(ArchiveConflict) as info:
        archive(Archiver(), file)
    assert hashlib.sha256(b"left by a crash").hexdigest() in str(info.value) and file.sha256 in str(info.value)
    assert target.read_bytes() == b"left by a crash" and not (target.parent / "manifest.json").exists()

    manifest = archive(Archiver(), staged(staging_dir, b"left by a crash"))
    assert manifest["sha256"] == hashlib.sha256(b"left by a crash").hexdigest()
    assert json.loads((target.parent / "manifest.json").read_text()) == manifest


def test_file_and_directory_are_fsynced(archive_root, staging_dir, monkeypatch):
    import os

    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))

    archive(Archiver(), staged(staging_dir, b"durable"))

    folder = str(archive_root / "minimax/job-1")
    assert str(staging_dir / "job-1/model.bin") in synced, "the data file (still under its staging name)"
    assert synced.count(folder) == 2, "the directory after the data link and after the manifest link"
    assert any(p.startswith(folder + "/.manifest.json.") for p in synced), "the manifest before its link"
