"""The archive: ``<root>/<provider>/<artifact_key>/<filename>`` plus ``manifest.json``, on any fsspec store.

Completion is marked by the manifest, written last. Data reaches its final name atomically: on a local root
by ``os.replace`` (a rename when staging shares the filesystem, so a 100 GB file is never copied twice;
otherwise one copy to a temporary name, then the rename); on object stores by one upload to the final key
(a PUT or multipart upload becomes visible only when complete, and a server-side "move" would copy it again).
Archiving the same artifact twice is a no-op when the bytes match and an ``ArchiveConflict`` when they don't.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import ObjectStoragePath, Variable

from artifact_harvest.core.download import DownloadedFile, safe_filename, safe_segment
from artifact_harvest.core.errors import FatalProviderError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_LOCAL = ("file", "local", "")


def _airflow_home() -> Path:
    from airflow.configuration import AIRFLOW_HOME

    return Path(AIRFLOW_HOME)


def archive_root() -> ObjectStoragePath:
    """Variable ``artifact_archive_root`` (any fsspec URL or a local path), default ``<AIRFLOW_HOME>/archive``.

    ``artifact_archive_conn_id`` names the connection for remote stores (``s3://`` ...).
    """
    root = Variable.get("artifact_archive_root", default=None) or str(_airflow_home() / "archive")
    conn_id = Variable.get("artifact_archive_conn_id", default=None) or None
    if "://" not in root:
        root = Path(root).expanduser().resolve().as_uri()
    return ObjectStoragePath(root, conn_id=conn_id)


def staging_dir() -> Path:
    """Variable ``artifact_staging_dir``, default ``<AIRFLOW_HOME>/staging``: local disk of the worker."""
    return Path(Variable.get("artifact_staging_dir", default=None) or _airflow_home() / "staging").expanduser()


class ArchiveConflict(FatalProviderError):
    """The archive already holds this artifact with different bytes; nothing was overwritten."""


class Archiver:
    """Moves verified staging files into the archive and writes their manifests."""

    def __init__(self, root: ObjectStoragePath | str | None = None) -> None:
        if root is None:
            self.root = archive_root()
        elif isinstance(root, ObjectStoragePath):
            self.root = root
        else:
            self.root = ObjectStoragePath(root if "://" in root else Path(root).resolve().as_uri())

    @property
    def _local(self) -> bool:
        return self.root.protocol in _LOCAL

    def _folder(self, provider: str, artifact_key: str) -> ObjectStoragePath:
        return self.root / safe_segment(provider, "provider") / safe_segment(artifact_key, "artifact key")

    def manifest(self, provider: str, artifact_key: str) -> dict | None:
        """The manifest of an archived artifact, or None when it is not (completely) archived."""
        path = self._folder(provider, artifact_key) / MANIFEST
        if not path.exists():
            return None
        return json.loads(path.read_text())

    def is_archived(self, provider: str, artifact_key: str) -> bool:
        return self.manifest(provider, artifact_key) is not None

    def archive(
        self,
        file: DownloadedFile,
        *,
        provider: str,
        artifact_key: str,
        source: dict,
        dag_id: str,
        run_id: str,
        extra: dict | None = None,
    ) -> dict:
        """Put ``file`` in place, write its manifest, remove it from staging; returns the manifest."""
        existing = self.manifest(provider, artifact_key)
        if existing is not None:
            return self._same_or_conflict(existing, file, provider, artifact_key)
        folder = self._folder(provider, artifact_key)
        target = folder / safe_filename(file.filename)
        if self._local:
            self._place_local(file.path, Path(target.path))
        else:
            folder.mkdir(parents=True, exist_ok=True)
            target.fs.put_file(str(file.path), target.path)
            file.path.unlink()
        manifest = {
            "provider": provider,
            "artifact_key": artifact_key,
            "filename": target.name,
            "size_bytes": file.size,
            "sha256": file.sha256,
            "md5": file.md5,
            "source": source,
            "archived_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "dag_id": dag_id,
            "run_id": run_id,
            "extra": extra or {},
            "path": str(target),
        }
        self._write_manifest(folder / MANIFEST, manifest)
        log.info("[%s] archived %s (%d bytes, sha256 %s)", provider, target, file.size, file.sha256)
        return manifest

    def _same_or_conflict(self, existing: dict, file: DownloadedFile, provider: str, artifact_key: str) -> dict:
        if existing.get("sha256") != file.sha256:
            raise ArchiveConflict(
                provider,
                f"{artifact_key} is already archived with sha256 {existing.get('sha256')}, "
                f"the new download has {file.sha256}; refusing to overwrite",
                hint=f"inspect {existing.get('path')} and the staged file {file.path}",
            )
        log.info("[%s] %s already archived with the same sha256; nothing to do", provider, artifact_key)
        file.path.unlink(missing_ok=True)
        return existing

    @staticmethod
    def _place_local(source: Path, target: Path) -> None:
        """Rename when on the same filesystem; else copy to a temporary name beside the target, then rename."""
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            shutil.copyfile(source, temp)
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        source.unlink()

    def _write_manifest(self, path: ObjectStoragePath, manifest: dict[str, Any]) -> None:
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        if not self._local:
            path.write_text(text)
            return
        local = Path(path.path)
        temp = local.with_name(f".{local.name}.{uuid.uuid4().hex}.tmp")
        try:
            temp.write_text(text)
            os.replace(temp, local)
        finally:
            temp.unlink(missing_ok=True)
