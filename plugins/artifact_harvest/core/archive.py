"""The archive: ``<root>/<provider>/<artifact_key>/<filename>`` plus ``manifest.json``.

Completion is marked by the manifest, written last. Both the data and the manifest are created only if
absent (a store's conditional create: ``os.link`` on local disk, ``If-None-Match: *`` on S3), so two
archivers of one key cannot both win: the loser verifies what the winner wrote, and ``put`` tells it so
(``created=False``). Across hosts one writer per key is the lease kept in the same store (``core.lease``,
``Archiver.lease``), held around download and archive; docs/one-writer.md says what each store guarantees.
Whatever is found in place (a winner's file, a file left without a manifest by a crash) is read back and compared by sha256 before
anything else is written: the same bytes are a no-op, different bytes an ``ArchiveConflict`` naming both.
The stores (``archive_local.LocalStore``, ``archive_s3.S3Store``, ``FsspecStore``) share one small interface.
Layout, manifest, Asset events and the S3 store's guarantees: docs/object-storage.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from airflow.sdk import ObjectStoragePath, Variable

from artifact_harvest.core.paths import safe_filename, safe_segment
from artifact_harvest.core.transfer import DownloadedFile
from artifact_harvest.core.errors import FatalProviderError
from artifact_harvest.core.lease import KeyLease, LeaseSettings

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
#: how long a manifest caught while it is being written (a non-atomic create) is read again
MANIFEST_WRITE_SECONDS = 10.0
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

    # the key's lease (core.lease): overwrite of one's own object, a listing, a delete
    def replace_text(self, path: ObjectStoragePath, text: str) -> None: ...

    def list_names(self, folder: ObjectStoragePath, prefix: str) -> list[str]: ...

    def delete(self, path: ObjectStoragePath) -> None: ...


@dataclass(frozen=True)
class Archived:
    """What ``Archiver.put`` did: ``created`` is True only for the one archiver that wrote the manifest."""

    manifest: dict
    created: bool


class FsspecStore:
    """Any other fsspec store (``memory://``, ``gs://``...): creates with mode ``"xb"`` (exclusive create).

    How exclusive that is depends on the filesystem: ``O_EXCL`` on a local one, ``If-None-Match`` in s3fs, a
    check-then-create in ``memory://`` (one process). A filesystem that refuses ``"xb"`` gets exists-then-write
    (logged as racy); the key's lease is then all that keeps two writers apart (docs/one-writer.md).
    """

    atomic_create = False  # "xb" on a local filesystem shows the file while it is written

    def __init__(self, state: Any = None) -> None:
        self.state = state

    def read_text(self, path: ObjectStoragePath) -> str | None:
        try:
            with path.fs.open(path.path, "rb") as f:
                return f.read().decode()
        except FileNotFoundError:
            return None

    def put_text(self, path: ObjectStoragePath, text: str) -> bool:
        return self._create(path, lambda f: f.write(text.encode()))

    def replace_text(self, path: ObjectStoragePath, text: str) -> None:
        path.fs.pipe_file(path.path, text.encode())

    def list_names(self, folder: ObjectStoragePath, prefix: str) -> list[str]:
        try:
            names = folder.fs.ls(folder.path, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return [n.rstrip("/").rsplit("/", 1)[-1] for n in names if n.rstrip("/").rsplit("/", 1)[-1].startswith(prefix)]

    def delete(self, path: ObjectStoragePath) -> None:
        try:
            path.fs.rm_file(path.path)
        except FileNotFoundError:
            pass

    def stat(self, target: ObjectStoragePath) -> tuple[int, str] | None:
        digest, size = hashlib.sha256(), 0
        try:
            with target.fs.open(target.path, "rb") as f:
                while chunk := f.read(4 << 20):
                    digest.update(chunk)
                    size += len(chunk)
        except FileNotFoundError:
            return None
        return size, digest.hexdigest()

    def put_data(self, file: DownloadedFile, target: ObjectStoragePath) -> bool:
        def copy(dst: Any) -> None:
            with file.path.open("rb") as src:
                while chunk := src.read(4 << 20):
                    dst.write(chunk)

        return self._create(target, copy)

    @staticmethod
    def _create(path: ObjectStoragePath, write: Callable[[Any], None]) -> bool:
        """Create ``path`` exclusively and ``write`` it; False when it exists."""
        try:
            path.fs.makedirs(path.fs._parent(path.path), exist_ok=True)
        except (NotImplementedError, OSError):
            pass  # object stores have no directories
        try:
            f = path.fs.open(path.path, "xb")
        except FileExistsError:
            return False
        except (ValueError, NotImplementedError):
            log.warning("%s does not support exclusive create; writing after an exists check (racy)", path.protocol)
            if path.fs.exists(path.path):
                return False
            f = path.fs.open(path.path, "wb")
        try:
            with f:
                write(f)
        except FileExistsError:
            return False  # a store that checks at commit (s3fs: If-None-Match on close)
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
        """The manifest of an archived artifact, or None when it is not (completely) archived.

        On a store whose create shows the object while it is written (``atomic_create`` False), a manifest
        that does not parse yet is read again for up to ``MANIFEST_WRITE_SECONDS``; past that it is corrupt.
        """
        path = self._folder(provider, artifact_key) / MANIFEST
        deadline = time.monotonic() + (0 if getattr(self.store, "atomic_create", True) else MANIFEST_WRITE_SECONDS)
        while (text := self.store.read_text(path)) is not None:
            try:
                return json.loads(text)
            except ValueError:
                if time.monotonic() >= deadline:
                    raise FatalProviderError(provider, f"{path} is not a valid manifest ({len(text)} characters)",
                                             hint="inspect it; an archiver may have died while writing it") from None
            time.sleep(0.05)
        return None

    def is_archived(self, provider: str, artifact_key: str) -> bool:
        return self.manifest(provider, artifact_key) is not None

    def lease(self, provider: str, artifact_key: str, *, owner: dict | None = None,
              settings: LeaseSettings | None = None, is_done: Callable[[], bool] | None = None) -> KeyLease:
        """The key's lease in this store (one writer per key across hosts); ``is_done`` defaults to "archived"."""
        return KeyLease(self.store, self._folder(provider, artifact_key), provider=provider,
                        label=f"[{provider}] {artifact_key}", owner=owner, settings=settings,
                        is_done=is_done or (lambda: self.is_archived(provider, artifact_key)))

    def archive(self, file: DownloadedFile, **kwargs: Any) -> dict:
        """``put`` and return the manifest (ours, or the identical one found)."""
        return self.put(file, **kwargs).manifest

    def put(
        self,
        file: DownloadedFile,
        *,
        provider: str,
        artifact_key: str,
        source: dict,
        dag_id: str,
        run_id: str,
        extra: dict | None = None,
        usage: dict | None = None,
    ) -> Archived:
        """Put ``file`` in place, write its manifest, remove it from staging.

        ``usage`` is what the job used (``core.usage.Usage.to_dict()``); empty or absent means unknown.

        Found the same bytes already archived (or lost the manifest's create to another archiver): the existing
        manifest with ``created=False``; different bytes: ``ArchiveConflict``."""
        existing = self.manifest(provider, artifact_key)
        if existing is not None:
            return Archived(self._same_or_conflict(existing, file, provider, artifact_key), False)
        folder = self._folder(provider, artifact_key)
        target = folder / safe_filename(file.filename)
        found = self.store.stat(target)  # a crash between data and manifest leaves this: verify it first
        if found is None and self.store.put_data(file, target):
            pass  # ours
        elif not getattr(self.store, "atomic_create", True):
            # the object may still be growing under another archiver: its manifest says when it is whole
            if (winner := self._await_manifest(provider, artifact_key)) is not None:
                return Archived(self._same_or_conflict(winner, file, provider, artifact_key), False)
            found = self.store.stat(target)
        elif found is None:
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
            "usage": usage or {},
            "path": str(target),
        }
        if not self.store.put_text(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n"):
            found_manifest = self.manifest(provider, artifact_key) or {}
            return Archived(self._same_or_conflict(found_manifest, file, provider, artifact_key), False)
        file.path.unlink(missing_ok=True)
        log.info("[%s] archived %s (%d bytes, sha256 %s)", provider, target, file.size, file.sha256)
        return Archived(manifest, True)

    def _await_manifest(self, provider: str, artifact_key: str) -> dict | None:
        """The winner's manifest, waited for (``lease_expiry``): on a store whose create shows the object while
        it is written, the data we lost to may still be growing."""
        deadline = time.monotonic() + LeaseSettings.from_config().expiry
        while (manifest := self.manifest(provider, artifact_key)) is None and time.monotonic() < deadline:
            time.sleep(0.2)
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
