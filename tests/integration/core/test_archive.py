"""Archiver and download_and_archive: layout, manifest, idempotency, conflicts, traversal, no temp leftovers."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath
from airflow.sdk.execution_time.context import OutletEventAccessors

from artifact_harvest.core import archive as archive_module
from artifact_harvest.core.archive import ArchiveConflict, Archiver
from artifact_harvest.core.assets import asset_for
from artifact_harvest.core.transfer import DownloadedFile, RemoteFile
from artifact_harvest.core.errors import FatalProviderError
from artifact_harvest.core.operators import download_and_archive

MANIFEST_KEYS = {
    "provider", "artifact_key", "filename", "size_bytes", "sha256", "md5", "source", "archived_at",
    "dag_id", "run_id", "extra", "usage", "path",
}


def staged(staging: Path, data: bytes, name: str = "model.bin", key: str = "job-1") -> DownloadedFile:
    path = staging / key / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return DownloadedFile(
        path=path, filename=name, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data).hexdigest(), seconds=0.1, resumed_from=0,
    )


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def archive(archiver: Archiver, file: DownloadedFile, key: str = "job-1", provider: str = "minimax") -> dict:
    return archiver.archive(
        file, provider=provider, artifact_key=key, source={"job_id": "j-1"}, dag_id="d", run_id="r",
        extra={"model": "m"},
    )


def test_roots_come_from_variables(archive_root, staging_dir):
    root = archive_module.archive_root()
    assert root.protocol == "file" and Path(root.path) == archive_root
    assert archive_module.staging_dir() == staging_dir


def test_layout_and_manifest(archive_root, staging_dir):
    file = staged(staging_dir, b"hello artifact")

    manifest = archive(Archiver(), file)

    assert all_files(archive_root) == ["minimax/job-1/manifest.json", "minimax/job-1/model.bin"]
    assert (archive_root / "minimax/job-1/model.bin").read_bytes() == b"hello artifact"
    assert set(manifest) == MANIFEST_KEYS
    assert manifest == json.loads((archive_root / "minimax/job-1/manifest.json").read_text())
    assert (manifest["size_bytes"], manifest["sha256"], manifest["md5"]) == (file.size, file.sha256, file.md5)
    assert manifest["source"] == {"job_id": "j-1"} and manifest["extra"] == {"model": "m"}
    assert manifest["usage"] == {}  # none given: unknown
    assert datetime.fromisoformat(manifest["archived_at"]).utcoffset().total_seconds() == 0
    assert manifest["path"].endswith("/minimax/job-1/model.bin")
    assert not file.path.exists(), "the staging file is removed once archived"
    assert Archiver().is_archived("minimax", "job-1") and not Archiver().is_archived("minimax", "job-2")


def test_manifest_records_the_usage_given(archive_root, staging_dir):
    seconds = {"video_seconds": {"value": 6, "unit": "s", "source": "request"}}
    manifest = Archiver().archive(staged(staging_dir, b"video"), provider="minimax", artifact_key="job-1",
                                  source={}, dag_id="d", run_id="r", usage=seconds)
    assert manifest["usage"] == seconds
    assert json.loads((archive_root / "minimax/job-1/manifest.json").read_text())["usage"] == seconds


def test_second_archive_with_same_bytes_is_a_noop(archive_root, staging_dir):
    first = archive(Archiver(), staged(staging_dir, b"same"))
    again = staged(staging_dir, b"same")

    assert archive(Archiver(), again) == first
    assert not again.path.exists()
    assert all_files(archive_root) == ["minimax/job-1/manifest.json", "minimax/job-1/model.bin"]


def test_conflict_on_different_bytes_never_overwrites(archive_root, staging_dir):
    archive(Archiver(), staged(staging_dir, b"original"))

    with pytest.raises(ArchiveConflict, match="refusing to overwrite") as info:
        archive(Archiver(), staged(staging_dir, b"different"))

    assert isinstance(info.value, FatalProviderError)
    assert (archive_root / "minimax/job-1/model.bin").read_bytes() == b"original"


@pytest.mark.parametrize(
    "provider, key, name",
    [("../../x", "job", "a.bin"), ("p", "../../../etc", "a.bin"), ("p", "k", "../../../../tmp/evil.bin"),
     ("/abs", "/etc/passwd", "/etc/passwd")],
)
def test_traversal_stays_inside_the_root(archive_root, staging_dir, provider, key, name):
    file = staged(staging_dir, b"data", name="a.bin")
    file = DownloadedFile(**{**file.__dict__, "filename": name})

    manifest = archive(Archiver(), file, key=key, provider=provider)

    archived = Path(ObjectStoragePath(manifest["path"]).path)
    assert archived.resolve().is_relative_to(archive_root.resolve())
    assert archived.read_bytes() == b"data"
    assert len(all_files(archive_root)) == 2


@pytest.mark.parametrize("bad", ["..", ".", ""])
def test_unusable_segments_rejected(archive_root, staging_dir, bad):
    with pytest.raises(FatalProviderError):
        archive(Archiver(), staged(staging_dir, b"data"), key=bad)
    assert all_files(archive_root) == []


def test_no_temporary_names_left_behind(archive_root, staging_dir):
    for key in ("a", "b", "c"):
        archive(Archiver(), staged(staging_dir, key.encode(), key=key), key=key)
    assert not [p for p in archive_root.rglob("*") if ".tmp" in p.name or p.name.startswith(".")]


def test_remote_store_put_then_manifest(staging_dir):
    """A non-local fsspec store (memory://) takes the upload branch; the layout is the same."""
    import fsspec
    from airflow.sdk.io.store import attach

    attach("memory", fs=fsspec.filesystem("memory"))
    root = ObjectStoragePath("memory://archive-test/root")
    manifest = archive(Archiver(root), staged(staging_dir, b"remote bytes"))

    assert (root / "minimax/job-1/model.bin").read_bytes() == b"remote bytes"
    assert json.loads((root / "minimax/job-1/manifest.json").read_text()) == manifest
    assert Archiver(root).manifest("minimax", "job-1") == manifest


def test_download_and_archive_end_to_end(emu, archive_root, staging_dir):
    blob = emu.control.create_blob(2 * 1024 * 1024 + 7, filename="weights.tar")
    fresh = lambda: RemoteFile(blob["url"], blob["filename"], blob["size"], blob["md5"])  # noqa: E731
    context = {"run_id": "manual__1", "outlet_events": OutletEventAccessors()}

    manifest = download_and_archive(
        "minimax", "file-42", fresh, {"file_id": 42}, context, extra_fn=lambda d, ctx: {"bytes": d.size}
    )

    archived = archive_root / "minimax/file-42/weights.tar"
    assert hashlib.sha256(archived.read_bytes()).hexdigest() == blob["sha256"] == manifest["sha256"]
    assert manifest["md5"] == blob["md5"] and manifest["extra"] == {"bytes": blob["size"]}
    assert manifest["run_id"] == "manual__1" and manifest["source"] == {"file_id": 42}
    assert "Signature" not in json.dumps(manifest) and "?" not in json.dumps(manifest)
    assert context["outlet_events"][asset_for("minimax")].extra == manifest
    assert all_files(staging_dir) == ["file-42/.lock"]  # only the key's lock stays (removing it would race)

    again = {"run_id": "manual__2", "outlet_events": OutletEventAccessors()}
    assert download_and_archive("minimax", "file-42", fresh, {}, again) == manifest
    assert again["outlet_events"][asset_for("minimax")].extra == {**manifest, "already_archived": True}
    assert len(emu.control.requests(path=f"/blobs/{blob['blob_id']}/")) == 1


def test_operator_subclass_executes_with_its_provider_asset(emu, archive_root, staging_dir):
    from artifact_harvest.core.operators import DownloadAndArchiveOperator

    blob = emu.control.create_blob(100_000, filename="out.zip")

    class EmuDownload(DownloadAndArchiveOperator):
        provider = "emu"

        def remote_file(self, context):
            return RemoteFile(blob["url"], blob["filename"], blob["size"], blob["md5"])

    op = EmuDownload(task_id="download", artifact_key="job-7", source={"job": 7})
    assert op.outlets == [asset_for("emu")]
    manifest = op.execute({"run_id": "r1", "outlet_events": OutletEventAccessors()})
    assert (archive_root / "emu/job-7/out.zip").stat().st_size == 100_000 and manifest["source"] == {"job": 7}


def test_remote_root_uses_the_connection_the_variable_names(monkeypatch):
    from artifact_harvest.core.archive import archive_root

    monkeypatch.setenv("AIRFLOW_VAR_ARTIFACT_ARCHIVE_ROOT", "s3://harvest-bucket/archive")
    monkeypatch.setenv("AIRFLOW_VAR_ARTIFACT_ARCHIVE_CONN_ID", "aws_archive")
    root = archive_root()
    assert (root.protocol, root.conn_id) == ("s3", "aws_archive")
    assert str(root).endswith("harvest-bucket/archive")  # Airflow writes it as s3://aws_archive@harvest-bucket/...
