"""The archive: ``<root>/<provider>/<artifact_key>/<filename>`` plus ``manifest.json``.

Completion is marked by the manifest, written last. Both the data and the manifest are created only if
absent (a store's conditional create: ``os.link`` on local disk, ``If-None-Match: *`` on S3), so two
archivers of one key cannot both win: the loser verifies what the winner wrote. Whatever is found in place
(a winner's file, a file left without a manifest by a crash) is read back and compared by sha256 before
anything else is written: the same bytes are a no-op, different bytes an ``ArchiveConflict`` naming both.
The stores (``archive_local.LocalStore``, ``archive_s3.S3Store``, ``FsspecStore``) share one small interface.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from airflow.sdk import ObjectStoragePath, Variable

from artifact_harvest.core.download import DownloadedFile, safe_filename, safe_segment
from artifact_harvest.core.errors import FatalProviderError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_LOCAL = ("file", "local", "")
_S3 = ("s3", "s3a")


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
    if root.split("://")[0] in _S3:
        _require_s3_support()
    return ObjectStoragePath(root, conn_id=conn_id)


def _require_s3_support() -> None:
    try:
        import s3fs  # noqa: F401
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook  # noqa: F401
    except ImportError as exc:
        raise FatalProviderError(
            "s3", f"an s3:// archive root needs the Amazon provider with s3fs ({exc.name} is not installed)",
            hint="pip install 'apache-airflow-providers-amazon[s3fs]' (pinned in requirements.txt)",
        ) from None


def staging_dir() -> Path:
    """Variable ``artifact_staging_dir``, default ``<AIRFLOW_HOME>/staging``: local disk of the worker."""
    return Path(Variable.get("artifact_staging_dir", default=None) or _airflow_home() / "staging").expanduser()


class ArchiveConflict(FatalProviderError):
    """The archive already holds this artifact with different bytes; nothing was overwritten."""


class Store(Protocol):
    """What the Archiver needs from a store; both writes are create-only and say whether they created."""

    def read_text(self, path: ObjectStoragePath) -> str | None: ...

    def put_text(self, path: ObjectStoragePath, text: str) -> bool: ...

    def stat(self, target: ObjectStoragePath) -> tuple[int, str] | None: ...

    def put_data(self, file: DownloadedFile, target: ObjectStoragePath) -> bool: ...


class FsspecStore:
    """Any other fsspec store (``memory://``, ``gs://``...): exists-then-write, no conditional create."""

    def __init__(self, state: Any = None) -> None:
        self.state = state

    def read_text(self, path: ObjectStoragePath) -> str | None:
        return path.read_text() if path.exists() else None

    def put_text(self, path: ObjectStoragePath, text: str) -> bool:
        if path.exists():
            return False
        path.write_text(text)
        return True

    def stat(self, target: ObjectStoragePath) -> tuple[int, str] | None:
        if not target.exists():
            return None
        digest = hashlib.sha256()
        with target.open("rb") as f:
            while chunk := f.read(4 << 20):
                digest.update(chunk)
        return target.stat().st_size, digest.hexdigest()

    def put_data(self, file: DownloadedFile, target: ObjectStoragePath) -> bool:
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        target.fs.put_file(str(file.path), target.path)
        return True


def store_for(root: ObjectStoragePath, state: Any = None, **options: Any) -> Store:
    if root.protocol in _LOCAL:
        from artifact_harvest.core.archive_local import LocalStore

        return LocalStore(state)
    if root.protocol in _S3:
        _require_s3_support()
        from artifact_harvest.core.archive_s3 import S3Store

        return S3Store(root, state, **options)
    return FsspecStore(state)


class Archiver:
    """Puts verified staging files into the archive and writes their manifests.

    :param state: the task state store (``context["task_state_store"]``): lets an S3 upload resume.
    :param options: store options (S3: ``part_size``, ``max_workers``).
    """

    def __init__(self, root: ObjectStoragePath | str | None = None, *, state: Any = None, **options: Any) -> None:
        if root is None:
            self.root = archive_root()
        elif isinstance(root, ObjectStoragePath):
            self.root = root
        else:
            self.root = ObjectStoragePath(root if "://" in root else Path(root).resolve().as_uri())
        self.store = store_for(self.root, state, **options)

    def _folder(self, provider: str, artifact_key: str) -> ObjectStoragePath:
        return self.root / safe_segment(provider, "provider") / safe_segment(artifact_key, "artifact key")

    def manifest(self, provider: str, artifact_key: str) -> dict | None:
        """The manifest of an archived artifact, or None when it is not (completely) archived."""
        text = self.store.read_text(self._folder(provider, artifact_key) / MANIFEST)
        return None if text is None else json.loads(text)

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
        found = self.store.stat(target)  # a crash between data and manifest leaves this: verify it first
        if found is None and not self.store.put_data(file, target):
            found = self.store.stat(target)  # another archiver created it meanwhile
        if found is not None:
            self._check_found(found, file, target, provider, artifact_key)
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
        if not self.store.put_text(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n"):
            return self._same_or_conflict(self.manifest(provider, artifact_key) or {}, file, provider, artifact_key)
        file.path.unlink(missing_ok=True)
        log.info("[%s] archived %s (%d bytes, sha256 %s)", provider, target, file.size, file.sha256)
        return manifest

    @staticmethod
    def _check_found(found: tuple[int, str], file: DownloadedFile, target: ObjectStoragePath, provider: str,
                     artifact_key: str) -> None:
        size, sha256 = found
        if sha256 != file.sha256:
            raise ArchiveConflict(
                provider,
                f"{artifact_key}: {target} already holds {size} bytes with sha256 {sha256} and no manifest of "
                f"ours, the new download has sha256 {file.sha256}; refusing to overwrite",
                hint=f"inspect {target} and the staged file {file.path}",
            )
        log.info("[%s] %s already holds the same bytes (sha256 %s); writing the manifest", provider, target, sha256)

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
