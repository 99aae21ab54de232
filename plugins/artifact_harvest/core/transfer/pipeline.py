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

#: buffers of the ring, and chunks in flight at most: one being filled, the others queued or being digested
RING = 4

Item = tuple[Any, bytearray | None]  # (the bytes to digest, the ring buffer they lie in: returned once digested)


class HashPipeline:
    """The caller writes each chunk to the staging file; every digest runs on a thread of its own.

    The digest threads form a chain (sha256, then md5 when wanted): a chunk goes to the next thread once the
    previous one has digested it, and the last one gives its buffer back to the ring. The stream reads straight
    into a ring buffer (``buffer()``), so no chunk is allocated or copied in Python; at most ``RING`` chunks are in
    flight, whoever fed them (bytes too: the ranged fetch's prefix). hashlib releases the GIL on big buffers, so
    each digest keeps a core while the caller reads and writes (why: docs/download.md). A background fdatasync
    starts every ``writeback_every`` bytes so the final fsync has little left to do; ``drop_written``: the pages
    it made durable then leave the page cache.
    """

    def __init__(
        self, part: Path | None, with_md5: bool, writeback_every: int = 32 << 20, *, chunk_size: int = 2 << 20,
        drop_written: bool = False,
    ) -> None:
        self._file = open(part, "ab", buffering=0) if part is not None else None  # noqa: SIM115 - closed in close()
        self.written = self._file.tell() if self._file else 0
        self._writeback = BackgroundSync(self._file.fileno()) if self._file else None
        self._writeback_every, self._drop = writeback_every, drop_written and hasattr(os, "posix_fadvise")
        self._synced = self.written  # where the last background sync started (its pages are dropped from there)
        self._names = ("sha256", "md5") if with_md5 else ("sha256",)
        self._hashes = self._new_hashes()
        self._error: BaseException | None = None
        self._chunk_size, self._free, self._made, self._lent = chunk_size, queue.SimpleQueue(), 0, None
        self._in_flight = threading.BoundedSemaphore(RING)  # chunks fed and not yet digested by every thread
        self._queues: list[queue.Queue[Item | None]] = [queue.Queue() for _ in self._names]
        self._threads = [
            threading.Thread(target=self._run, args=(i,), name=f"download-{name}", daemon=True)
            for i, name in enumerate(self._names)
        ]
        for thread in self._threads:
            thread.start()

    def _new_hashes(self) -> dict[str, Any]:
        return {name: hashlib.new(name) for name in self._names}

    def _run(self, stage: int) -> None:
        name, inbox = self._names[stage], self._queues[stage]
        after = self._queues[stage + 1] if stage + 1 < len(self._queues) else None
        while True:
            item = inbox.get()
            try:
                if item is not None and self._error is None:
                    self._hashes[name].update(item[0])
            except BaseException as exc:  # re-raised in the caller's thread by sync()
                self._error = exc
            finally:
                if after is not None:
                    after.put(item)  # before task_done: sync() joins the queues in order
                elif item is not None:
                    if item[1] is not None:
                        self._free.put(item[1])
                    self._in_flight.release()
                inbox.task_done()
            if item is None:
                return

    def buffer(self) -> memoryview:
        """A ring buffer of ``chunk_size`` bytes to read the next chunk into; pass what was read to ``feed``.

        Waits while every buffer is still being digested (that bounds memory); a buffer not fed is lent again.
        """
        if self._lent is None:
            if self._made < RING:
                self._made += 1
                self._lent = bytearray(self._chunk_size)
            else:
                while self._lent is None:
                    try:
                        self._lent = self._free.get(timeout=1.0)
                    except queue.Empty:
                        if not all(thread.is_alive() for thread in self._threads):
                            raise RuntimeError("a digest thread ended with chunks queued") from None  # a bug, loudly
        return memoryview(self._lent)

    def feed(self, chunk: Any, *, to_file: bool = True) -> None:
        """Write one chunk (unless ``to_file=False``: bytes already on disk) and digest it.

        ``chunk``: bytes, or a slice of ``buffer()`` (which then goes back to the ring once digested).
        """
        if to_file and self._file is not None:
            view = memoryview(chunk)
            while view:
                written = self._file.write(view)
                self.written += written
                view = view[written:]
            if self.written - self._synced >= self._writeback_every and self._writeback.kick(self._dropper()):
                self._synced = self.written
        ring = None
        if isinstance(chunk, memoryview) and self._lent is not None and chunk.obj is self._lent:
            ring, self._lent = self._lent, None
        self._in_flight.acquire()  # at most RING chunks queued or being digested, bytes or ring buffers
        self._queues[0].put((chunk, ring))

    def _dropper(self) -> Any:
        """What the background sync does once the bytes written so far are durable: drop their pages (clean now),
        so the next writes reuse them instead of taking fresh memory (docs/download.md); best effort."""
        if not self._drop:
            return None
        fd, start, end = self._file.fileno(), self._synced, self.written

        def drop() -> None:
            try:
                os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass  # advice only: the pages stay cached

        return drop

    def sync(self, durable: bool = False) -> int:
        """Wait until every chunk is digested and written (``durable``: fsynced); returns the file's size."""
        for inbox in self._queues:
            inbox.join()
        if self._file is not None and not self._file.closed and durable:
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
        self.written = self._synced = 0
        self._hashes = self._new_hashes()

    def hexdigest(self, name: str) -> str | None:
        self.sync()
        return self._hashes[name].hexdigest() if name in self._hashes else None

    def rehash(self, path: Path) -> int:
        """Feed the bytes already in ``path`` to the hashes; returns how many there are."""
        if not path.exists():
            return 0
        size = 0
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf := self.buffer()):
                self.feed(buf[:n], to_file=False)
                size += n
        return size

    def close(self) -> None:
        self._queues[0].put(None)
        for thread in self._threads:
            thread.join()
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

    def write(self, pipe: HashPipeline, chunk: Any, label: str) -> None:
        """A full or failing staging disk fails the attempt; the bytes written so far stay for the retry."""
        try:
            pipe.feed(chunk)
        except OSError as exc:
            raise DownloadError(
                self.provider,
                f"{label}: cannot write to staging {self.staging_dir}: {exc.strerror or exc}",
                hint="free space or point the Variable artifact_staging_dir elsewhere; a retry resumes",
            ) from None
