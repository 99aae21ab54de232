"""A provider's file name is untrusted: ``../../etc/passwd`` or an absolute path must land inside staging
and the archive, never beside or above them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from artifact_harvest.core.archive import Archiver
from artifact_harvest.core.transfer import Downloader, RemoteFile
from artifact_harvest.core.errors import FatalProviderError


def _hostile_names(outside: Path) -> list[str]:
    # an absolute path inside the test's tmp dir: a bug would write there, not over the real /etc/passwd
    return ["../../etc/passwd", "..\\..\\etc\\passwd", str(outside / "passwd"), "..", "a/../../../b"]


def _files_under(root: Path) -> set[Path]:
    return {Path(dirpath) / f for dirpath, _, files in os.walk(root) for f in files}


@pytest.mark.parametrize("index", range(5))
def test_hostile_filename_stays_inside_staging_and_archive(index, emu, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    staging, archive = tmp_path / "deep" / "staging", tmp_path / "deep" / "archive"
    staging.mkdir(parents=True)
    archive.mkdir()
    name = _hostile_names(outside)[index]
    blob = emu.control.create_blob(4096, filename="artifact.bin", seed=3)
    # the provider answers with the blob's URL and a hostile file name
    remote = RemoteFile(blob["url"], name, size=blob["size"], md5=blob["md5"])

    try:
        downloaded = Downloader(staging, provider="hostile").download(lambda: remote, key="../../key")
    except FatalProviderError:
        downloaded = None  # refusing the name outright is fine too
    if downloaded is not None:
        assert downloaded.path.resolve().is_relative_to(staging.resolve())
        manifest = Archiver(str(archive)).archive(
            downloaded, provider="../hostile", artifact_key="/abs/key", source={}, dag_id="d", run_id="r"
        )
        assert Path(manifest["path"].removeprefix("file://")).resolve().is_relative_to(archive.resolve())
        assert "/" not in manifest["filename"] and manifest["filename"] not in ("", ".", "..")

    written = _files_under(tmp_path)
    assert all(p.resolve().is_relative_to(staging.resolve()) or p.resolve().is_relative_to(archive.resolve())
               for p in written), sorted(map(str, written))
    assert not any(outside.iterdir())
    if downloaded is not None:
        archived = [p for p in _files_under(archive) if p.name != "manifest.json"]
        assert len(archived) == 1 and archived[0].stat().st_size == blob["size"]
