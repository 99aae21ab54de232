"""The archive's local-disk store (also an NFS mount): create-only placement (``os.link``), fsync of file and
directory.

``os.link`` fails with ``EEXIST`` when the name is taken, so of two archivers of one key exactly one creates
the data file and one the manifest; the other finds them and verifies. A link only ever points at a complete,
fsynced file, so a reader never sees a half-written one. Staging on another filesystem is copied to a
temporary name beside the target (hashed while copied), fsynced, then linked into place. The same create
takes the key's lease (``core.lease``); ``link`` is atomic on NFS as well, unlike ``O_EXCL`` on old clients.
The archive's layout and guarantees: docs/object-storage.md.
"""

from __future__ import annotations

import errno
import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow.sdk import ObjectStoragePath

from artifact_harvest.core.transfer import DownloadedFile
from artifact_harvest.core.staging import fsync_path

_CHUNK = 4 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _temp_beside(target: Path) -> Path:
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")


def _write_then(target: Path, text: str, place: Callable[[Path, Path], Any]) -> Any:
    """Write ``text`` to a fsynced temporary beside ``target``, then ``place(temp, target)``; the temp never stays."""
    temp = _temp_beside(target)
    try:
        with temp.open("x") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        return place(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def _link_new(source: Path, target: Path) -> bool:
    """Give ``source`` the name ``target`` unless it is taken; durable once it returns True."""
    try:
        os.link(source, target)
    except FileExistsError:
        return False
    fsync_path(target.parent)
    return True


class LocalStore:
    """A ``file://`` root."""

    def __init__(self, state: object = None) -> None:
        self.state = state  # unused: a local placement has nothing to resume

    def read_text(self, path: ObjectStoragePath) -> str | None:
        try:
            return Path(path.path).read_text()
        except FileNotFoundError:
            return None

    def stat(self, target: ObjectStoragePath) -> tuple[int, str] | None:
        """``(size, sha256)`` of what is at ``target`` (read back in full), or None when nothing is."""
        local = Path(target.path)
        if not local.exists():
            return None
        return local.stat().st_size, sha256_file(local)

    def put_data(self, file: DownloadedFile, target: ObjectStoragePath) -> bool:
        """Create ``target`` with the staged bytes; False (nothing written) when it already exists."""
        local = Path(target.path)
        local.parent.mkdir(parents=True, exist_ok=True)
        fsync_path(file.path)
        try:
            return _link_new(file.path, local)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        temp = _temp_beside(local)
        try:
            digest = hashlib.sha256()
            with file.path.open("rb") as src, temp.open("xb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            if digest.hexdigest() != file.sha256:
                raise OSError(f"copy of {file.path} has sha256 {digest.hexdigest()}, expected {file.sha256}")
            return _link_new(temp, local)
        finally:
            temp.unlink(missing_ok=True)

    def put_text(self, path: ObjectStoragePath, text: str) -> bool:
        """Create ``path`` with ``text`` (temp, fsync, link); False when it already exists."""
        local = Path(path.path)
        local.parent.mkdir(parents=True, exist_ok=True)
        return _write_then(local, text, _link_new)

    def replace_text(self, path: ObjectStoragePath, text: str) -> None:
        """Overwrite ``path`` atomically (temp, fsync, rename): a reader sees the old text or the new."""
        _write_then(Path(path.path), text, os.replace)

    def list_names(self, folder: ObjectStoragePath, prefix: str) -> list[str]:
        try:
            return [name for name in os.listdir(folder.path) if name.startswith(prefix)]
        except FileNotFoundError:
            return []

    def delete(self, path: ObjectStoragePath) -> None:
        Path(path.path).unlink(missing_ok=True)
