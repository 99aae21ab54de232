"""The hashing pipeline (write + digest every chunk in one pass) and the disk guard of the staging directory."""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import threading
from pathlib import Path
from typing import Any

from artifact_harvest.core.errors import DownloadError, InsufficientDiskSpace
from artifact_harvest.core.staging import BackgroundSync


class HashPipeline:
    """Each chunk is written to the staging file and digested; the slowest digest runs on a thread of its own.

    The calling thread writes the chunk, queues it for the digest thread (md5 when wanted, else sha256), and
    runs the other digest inline; hashlib releases the GIL on big buffers, so the digest thread keeps a core to
    itself (why not more threads: docs/download.md). The queue is bounded: memory stays at a few chunks. A
    background fdatasync starts every ``writeback_every`` bytes so the final fsync has little left to do.
    """

    def __init__(self, part: Path | None, with_md5: bool, writeback_every: int = 64 << 20) -> None:
        self._file = open(part, "ab") if part is not None else None  # noqa: SIM115 - closed in close()
        self.written = self._file.tell() if self._file else 0
        self._writeback = BackgroundSync(self._file.fileno()) if self._file else None
        self._writeback_every = writeback_every
        self._synced = self.written
        *self._inline, self._threaded = ("sha256", "md5") if with_md5 else ("sha256",)
        self._hashes = self._new_hashes()
        self._error: BaseException | None = None
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=3)
        self._thread = threading.Thread(target=self._run, name=f"download-{self._threaded}", daemon=True)
        self._thread.start()

    def _new_hashes(self) -> dict[str, Any]:
        return {name: hashlib.new(name) for name in (*self._inline, self._threaded)}

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            try:
                if chunk is None:
                    return
                if self._error is None:
                    self._hashes[self._threaded].update(chunk)
            except BaseException as exc:  # re-raised in the main thread by sync()
                self._error = exc
            finally:
                self._queue.task_done()

    def feed(self, chunk: bytes, *, to_file: bool = True) -> None:
        """Write one chunk (unless ``to_file=False``: bytes already on disk) and digest it."""
        if to_file and self._file is not None:
            self._file.write(chunk)
            self.written += len(chunk)
            if self.written - self._synced >= self._writeback_every and self._writeback.kick():
                self._synced = self.written
        self._queue.put(chunk)
        for name in self._inline:
            self._hashes[name].update(chunk)

    def sync(self, durable: bool = False) -> int:
        """Wait until every chunk is digested and written (``durable``: fsynced); returns the file's size."""
        self._queue.join()
        if self._file is not None and not self._file.closed:
            self._file.flush()
            if durable:
                self._writeback.wait()
                os.fsync(self._file.fileno())
        if self._error is not None:
            raise self._error
        return self.written

    def restart(self) -> None:
        """Forget everything: empty file, fresh hashes (the server ignored our Range)."""
        self.sync()
        if self._file is not None:
            self._file.truncate(0)
        self.written = 0
        self._hashes = self._new_hashes()

    def hexdigest(self, name: str) -> str | None:
        self.sync()
        return self._hashes[name].hexdigest() if name in self._hashes else None

    def rehash(self, path: Path, chunk_size: int) -> int:
        """Feed the bytes already in ``path`` to the hashes; returns how many there are."""
        if not path.exists():
            return 0
        size = 0
        with open(path, "rb") as f:
            while chunk := f.read(chunk_size):
                self.feed(chunk, to_file=False)
                size += len(chunk)
        return size

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._file is not None:
            try:
                self._writeback.wait()
            except OSError:
                pass  # the file is being abandoned or was fsynced already; its fd must not close under the sync
            self._file.close()


class DiskGuard:
    """The staging directory's limits, as errors that say what to free; the valid partial always stays."""

    def __init__(self, staging_dir: Path, provider: str) -> None:
        self.staging_dir, self.provider = staging_dir, provider

    def check(self, size: int | None, offset: int, label: str) -> None:
        """Too little room for the rest (``size - offset`` bytes): fail retryably, saying what to free."""
        if size is None:
            return
        free = shutil.disk_usage(self.staging_dir).free
        if free < size - offset:
            raise InsufficientDiskSpace(
                self.provider,
                f"{label}: staging {self.staging_dir} has {free} bytes free but {size - offset} more are needed "
                f"(file {size} bytes, {offset} already staged and kept)",
                hint=f"free at least {size - offset - free} bytes under {self.staging_dir} (or point the Variable "
                "artifact_staging_dir elsewhere); a retry resumes",
            )

    def write(self, pipe: HashPipeline, chunk: bytes, label: str) -> None:
        """A full or failing staging disk fails the attempt; the bytes written so far stay for the retry."""
        try:
            pipe.feed(chunk)
        except OSError as exc:
            raise DownloadError(
                self.provider,
                f"{label}: cannot write to staging {self.staging_dir}: {exc.strerror or exc}",
                hint="free space or point the Variable artifact_staging_dir elsewhere; a retry resumes",
            ) from None
