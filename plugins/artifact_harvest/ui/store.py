"""Reading archived bytes for the page: resolve provider + key through the manifest, stream, re-hash.

Nothing here takes a path from a request: the folder comes from the archive root plus the (validated)
provider and key, the file name from the manifest in that folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.sdk import ObjectStoragePath

from artifact_harvest.core.archive import MANIFEST, archive_root
from artifact_harvest.core.download import safe_filename, safe_segment

CHUNK = 1024 * 1024
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_QUERY = re.compile(r"\?[^\s'\"]*")
_USERINFO = re.compile(r"(\w+://)[^/@\s'\"]+@")


class StoreUnavailable(Exception):
    """The archive root cannot be read; the message is the store's own, with secrets removed."""


class NotArchived(Exception):
    """The index knows the artifact but the store lacks its manifest or data file."""


def scrub(text: str) -> str:
    """A store's error message without query strings (signed URLs) or ``user:password@`` in URLs."""
    return _USERINFO.sub(r"\1***@", _QUERY.sub("?***", text))


@dataclass(frozen=True)
class StoredArtifact:
    manifest: dict[str, Any]
    data: ObjectStoragePath

    @property
    def filename(self) -> str:
        return self.data.name

    @property
    def size(self) -> int:
        return int(self.manifest["size_bytes"])


def _root() -> ObjectStoragePath:
    try:
        return archive_root()
    except Exception as exc:  # noqa: BLE001 - any failure to build the root is "unreachable"
        raise StoreUnavailable(scrub(f"{type(exc).__name__}: {exc}")) from None


def store_status() -> dict[str, Any]:
    """Whether the archive root answers; shown as a banner on the page when it does not."""
    try:
        root = _root()
        root.exists()
        return {"reachable": True, "root": scrub(str(root))}
    except StoreUnavailable as exc:
        return {"reachable": False, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001
        return {"reachable": False, "error": scrub(f"{type(exc).__name__}: {exc}")}


def resolve(provider: str, artifact_key: str) -> StoredArtifact:
    """The manifest and data file in ``<root>/<provider>/<key>/``, checked to exist."""
    folder = _root() / safe_segment(provider, "provider") / safe_segment(artifact_key, "artifact key")
    try:
        manifest_path = folder / MANIFEST
        if not manifest_path.exists():
            raise NotArchived(f"the archive has no {MANIFEST} for {provider}/{artifact_key} at {scrub(str(folder))}")
        manifest = json.loads(manifest_path.read_text())
        data = folder / safe_filename(manifest["filename"])
        if not data.exists():
            raise NotArchived(f"the manifest names {data.name} but the archive has no such file in {scrub(str(folder))}")
    except NotArchived:
        raise
    except Exception as exc:  # noqa: BLE001 - the store failed us: say what it said, minus secrets
        raise StoreUnavailable(scrub(f"{type(exc).__name__}: {exc}")) from None
    return StoredArtifact(manifest, data)


def stream(artifact: StoredArtifact) -> Iterator[bytes]:
    """The stored bytes in CHUNK pieces: constant memory whatever the size."""
    with artifact.data.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def stored_size(artifact: StoredArtifact) -> int:
    return int(artifact.data.stat().st_size) if artifact.data.protocol in ("file", "local", "") \
        else int(artifact.data.fs.size(artifact.data.path))


# -- verify jobs --------------------------------------------------------------------------------------------
# A job's progress is a small JSON file, so every API server worker process on the host can answer its polls.

def _jobs_dir() -> Path:
    folder = Path(os.environ.get("ARTIFACT_HARVEST_VERIFY_DIR") or Path(tempfile.gettempdir()) / "artifact-harvest-verify")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write_job(job: dict[str, Any]) -> None:
    path = _jobs_dir() / f"{job['job_id']}.json"
    temp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
    temp.write_text(json.dumps(job))
    os.replace(temp, path)


def read_job(job_id: str) -> dict[str, Any] | None:
    if not _JOB_ID.match(job_id):
        return None
    path = _jobs_dir() / f"{job_id}.json"
    return json.loads(path.read_text()) if path.exists() else None


class VerifyBusy(Exception):
    """Every verification slot of this host is taken; ``limit`` is ``[artifact_harvest] verify_concurrency``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"{limit} verification(s) already run on this API server, its limit "
                         "([artifact_harvest] verify_concurrency)")


def verify_concurrency() -> int:
    """How many verifications may hash at once on one host (``[artifact_harvest] verify_concurrency``, default 2)."""
    from airflow.configuration import conf

    return max(1, conf.getint("artifact_harvest", "verify_concurrency", fallback=2))


def start_verify(artifact: StoredArtifact, dag_id: str) -> tuple[dict[str, Any], bool]:
    """``(job, started)``: a new re-hash on a background thread, or the one already running for this artifact
    (``started`` False). At most one per artifact and ``verify_concurrency()`` in all on this host, across
    every API server process: each running job holds an flock on its artifact's file and on one slot file,
    which the OS drops if the process dies. Raises :class:`VerifyBusy` when no slot is free."""
    folder, provider, key = _jobs_dir(), artifact.manifest.get("provider"), artifact.manifest.get("artifact_key")
    name = hashlib.sha256(f"{provider}/{key}".encode()).hexdigest()[:32]
    with _admission(folder):
        mine = _try_lock(folder / f"artifact-{name}.lock")
        if mine is None:
            running = read_job((folder / f"artifact-{name}.lock").read_text().strip())
            if running is not None and running["state"] == "running":
                return running, False
            raise VerifyBusy(verify_concurrency())  # its job file is gone: treat as busy, never hash twice
        limit = verify_concurrency()
        slot = next((fd for fd in (_try_lock(folder / f"slot-{i}.lock") for i in range(limit)) if fd is not None),
                    None)
        if slot is None:
            os.close(mine)
            raise VerifyBusy(limit)
        job = {
            "job_id": uuid.uuid4().hex, "state": "running", "dag_id": dag_id, "provider": provider,
            "artifact_key": key, "bytes_done": 0, "size_bytes": artifact.size,
            "expected_sha256": artifact.manifest.get("sha256"), "actual_sha256": None, "ok": None, "error": None,
        }
        try:
            _write_job(job)
            os.ftruncate(mine, 0)
            os.pwrite(mine, job["job_id"].encode(), 0)
            threading.Thread(target=_verify_holding, args=(artifact, dict(job), (mine, slot)),
                             name=f"verify-{job['job_id']}", daemon=True).start()
        except BaseException:
            os.close(mine)
            os.close(slot)
            raise
    return job, True


@contextmanager
def _admission(folder: Path) -> Iterator[None]:
    """One admission decision at a time on this host (held for milliseconds, never while hashing)."""
    fd = os.open(folder / "admission.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive flock on ``path``, or None when another holder has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None


def _verify_holding(artifact: StoredArtifact, job: dict[str, Any], locks: tuple[int, ...]) -> None:
    try:
        _verify(artifact, job)
    finally:
        for fd in locks:
            os.close(fd)


def _verify(artifact: StoredArtifact, job: dict[str, Any], report_every: int = 64 * CHUNK) -> None:
    digest, done, reported = hashlib.sha256(), 0, 0
    try:
        for chunk in stream(artifact):
            digest.update(chunk)
            done += len(chunk)
            if done - reported >= report_every:
                reported = job["bytes_done"] = done
                _write_job(job)
        actual = digest.hexdigest()
        job.update(state="done", bytes_done=done, actual_sha256=actual,
                   ok=actual == job["expected_sha256"] and done == job["size_bytes"])
    except Exception as exc:  # noqa: BLE001 - the job reports it; nothing else is waiting
        job.update(state="failed", error=scrub(f"{type(exc).__name__}: {exc}"))
    _write_job(job)
