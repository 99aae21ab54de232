"""What lives beside a staged file: the one-writer lock of its key and the sidecar that says which version it is.

- ``key_lock``: an exclusive ``fcntl.flock`` on ``<staging>/<key>/.lock``, held for the whole
  download+archive step. A second run of the same key waits (bounded, logged), then sees the archived copy.
  flock is released by the kernel when the holder dies, so a killed worker never leaves a stale lock.
- ``Sidecar``: ``<name>.meta.json`` keeps the first response's validator (ETag, else Last-Modified) and total
  length, so a resume can ask ``If-Range`` for that exact version; once the file is complete it also keeps the
  digests it was verified with, so a file reused from staging is re-verified against them. A file fetched in
  ranges also lists its finished pieces there (the control file of ``core.transfer.ranged``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from artifact_harvest.core.config import setting
from artifact_harvest.core.errors import KeyLocked

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
SIDECAR_SUFFIX = ".meta.json"


def fsync_path(path: Path) -> None:
    """fsync a file, or a directory (which makes a rename or create in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BackgroundSync:
    """fdatasync off the hot path, at most one in flight, so writeback overlaps the download instead of all of
    it waiting for the final fsync; ``then`` runs once it is done (e.g. list the pieces it made durable)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def kick(self, then: Callable[[], None] | None = None) -> bool:
        """Start one unless one is running; True if started."""
        if self._thread is not None and self._thread.is_alive():
            return False
        self._thread = threading.Thread(target=self._run, args=(then,), name="staging-fdatasync", daemon=True)
        self._thread.start()
        return True

    def _run(self, then: Callable[[], None] | None) -> None:
        try:
            os.fdatasync(self.fd)
            if then is not None:
                then()
        except BaseException as exc:  # re-raised by wait() in the owning thread
            self._error = exc

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error


@contextmanager
def key_lock(
    folder: Path, *, label: str, provider: str = "download", timeout: float | None = None, poll: float = 0.2,
    log_every: float = 30.0,
) -> Iterator[None]:
    """Hold an exclusive lock on ``folder/.lock``; wait at most ``timeout`` s (``[artifact_harvest] lock_timeout``)."""
    timeout = setting("lock_timeout", 6 * 3600.0) if timeout is None else timeout
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        started = time.monotonic()
        last_log = None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= timeout:
                    raise KeyLocked(
                        provider,
                        f"{label}: another run has held the staging lock {folder / LOCK_NAME} for more than "
                        f"{timeout:.0f}s",
                        hint="a retry waits again; raise [artifact_harvest] lock_timeout for very long downloads",
                    ) from None
                if last_log is None or time.monotonic() - last_log >= log_every:
                    log.info("%s: another run is downloading this key; waiting for its lock (%.0fs so far)",
                             label, waited)
                    last_log = time.monotonic()
                time.sleep(poll)
        if time.monotonic() - started > poll:
            log.info("%s: got the staging lock after %.1fs", label, time.monotonic() - started)
        yield
    finally:
        os.close(fd)  # releases the flock


@dataclass
class Sidecar:
    """Which remote version a staged file holds. ``validator`` is sent as ``If-Range``."""

    validator: str | None
    total: int | None
    sha256: str | None = None  # set once the file is complete and verified
    md5: str | None = None
    piece_size: int | None = None  # set when the file is fetched in ranges (a preallocated .part)
    done: list[int] | None = None  # indices of the pieces on disk (fsynced before they are listed)

    @property
    def prefix(self) -> int:
        """Bytes from 0 known to be on disk: all of a plain partial, the finished leading pieces of a ranged one."""
        if self.piece_size is None:
            return -1  # a plain partial: its length is what is on disk
        done, count = set(self.done or ()), 0
        while count in done:
            count += 1
        return min(count * self.piece_size, self.total or 0)

    @staticmethod
    def path_for(final: Path) -> Path:
        return final.with_name(final.name + SIDECAR_SUFFIX)

    @classmethod
    def load(cls, final: Path) -> Sidecar | None:
        """None when missing or unreadable (a torn write): the staged bytes then count as unknown."""
        try:
            data = json.loads(cls.path_for(final).read_text())
            return cls(**{k: data.get(k) for k in ("validator", "total", "sha256", "md5", "piece_size", "done")})
        except (OSError, ValueError, TypeError):
            return None

    def save(self, final: Path) -> None:
        """Write-then-rename with fsync: a crash leaves the old sidecar or the new one, never half of one."""
        path = self.path_for(final)
        temp = path.with_name(f".{path.name}.tmp")
        with open(temp, "w") as f:
            json.dump(asdict(self), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
        fsync_path(path.parent)

    @classmethod
    def remove(cls, final: Path) -> None:
        cls.path_for(final).unlink(missing_ok=True)
