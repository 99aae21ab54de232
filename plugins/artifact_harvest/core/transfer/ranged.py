"""The ranged fetch: N connections write pieces at their offsets into a preallocated ``.part`` while the calling
thread hashes the contiguous prefix as it grows (verified in the same pass). The design and its figures:
docs/download.md ("Parallel ranged downloads")."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from pathlib import Path

import requests

from artifact_harvest.core.errors import DownloadError, FatalDownloadError
from artifact_harvest.core.redact import redact_url
from artifact_harvest.core.retry import is_transient_status, parse_retry_after
from artifact_harvest.core.session import plain_session
from artifact_harvest.core.staging import BackgroundSync, Sidecar
from artifact_harvest.core.transfer import headers as hdr
from artifact_harvest.core.transfer.context import Context
from artifact_harvest.core.transfer.pipeline import HashPipeline
from artifact_harvest.core.transfer.progress import Progress, log_progress
from artifact_harvest.core.transfer.source import UrlSource
from artifact_harvest.core.transfer.stream import READ_ERRORS
from artifact_harvest.core.transfer.values import RangedPlan, Retry, Stop, Transfer, VersionChanged

log = logging.getLogger(__name__)


class RangedFetch:
    """Fetches the missing pieces of ``transfer``'s file; see the module docstring."""

    def __init__(
        self, ctx: Context, source: UrlSource, transfer: Transfer, plan: RangedPlan, part: Path, label: str,
        hashed: int = 0,
    ) -> None:
        """``hashed``: bytes a single stream already fed to the hashes (a hand-over); the rest comes in pieces."""
        self.ctx, self.source, self.transfer, self.plan = ctx, source, transfer, plan
        self.part, self.label = part, label
        self.pieces = -(-plan.total // plan.piece_size)
        self.window = max(4 * plan.connections * plan.piece_size, 64 << 20)
        self._cond = threading.Condition()
        self._done: set[int] = set(transfer.sidecar.done or ()) if transfer.sidecar else set()
        self._todo = [i for i in range(self.pieces) if i not in self._done]
        self._hashed = hashed
        self._handed_over = hashed > 0
        self._allowed = plan.connections
        self._active = 0
        self._error: BaseException | None = None
        self._received = 0  # bytes written by this run (progress only)

    # -- the calling thread: allocate, hash the prefix, keep the control file, report progress ------------
    def run(self, pipe: HashPipeline) -> int:
        """Returns how many bytes earlier runs had fetched (0: every byte came from this one, a clean pass)."""
        plan, sidecar = self.plan, self.transfer.sidecar
        assert sidecar is not None and sidecar.piece_size == plan.piece_size
        self.source.new_budget()
        fd = os.open(self.part, os.O_RDWR | os.O_CREAT, 0o644)
        self._writeback = BackgroundSync(fd)
        try:
            self._allocate(fd)
            self._hash_until(fd, pipe, sidecar.prefix)
            resumed_from = min(len(self._done) * plan.piece_size, plan.total)
            if self._done and not self._handed_over:
                log.info("%s: resuming: %d of %d pieces already in staging, %d bytes re-hashed",
                         self.label, len(self._done), self.pieces, sidecar.prefix)
            workers = [threading.Thread(target=self._worker, args=(i, fd), name=f"range-{i}", daemon=True)
                       for i in range(min(plan.connections, len(self._todo)))]
            for worker in workers:
                worker.start()
            self._follow(fd, pipe, workers)
            for worker in workers:
                worker.join()
            self._writeback.wait()
            os.fsync(fd)
            self._save(list(self._done))  # every worker has ended: no one adds to it now
            if self._error is not None:
                raise self._error
            return resumed_from
        finally:
            with self._cond:
                if self._error is None:
                    self._error = Stop()
                self._cond.notify_all()
            try:
                self._writeback.wait()
            except OSError:
                pass  # an error is on its way up already
            os.close(fd)

    def _allocate(self, fd: int) -> None:
        """Reserve the whole file up front: a full disk shows now, not 90 GB in (the disk check holds)."""
        size = os.fstat(fd).st_size
        if size >= self.plan.total:
            return
        self.ctx.disk.check(self.plan.total, size, self.label)
        try:
            os.posix_fallocate(fd, 0, self.plan.total)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            os.ftruncate(fd, self.plan.total)

    def _follow(self, fd: int, pipe: HashPipeline, workers: list[threading.Thread]) -> None:
        """Hash the prefix as pieces finish; every second make finished pieces durable and list them."""
        started = last_save = time.monotonic()
        progress = Progress(self.label, self.ctx.settings.progress_interval, self.plan.total)
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._error is not None or self._next_ready(), timeout=0.5)
            self._hash_until(fd, pipe, self._prefix())
            now = time.monotonic()
            if now - last_save >= 1.0:
                with self._cond:
                    snapshot = list(self._done)
                if self._writeback.kick(lambda done=snapshot: self._save(done)):  # durable first, then listed
                    last_save = now
            if progress.due():
                self._log_progress(started)
            if self._error is not None or self._hashed >= self.plan.total:
                return
            if not any(worker.is_alive() for worker in workers) and not self._next_ready():
                raise RuntimeError(f"{self.label}: every connection ended with pieces missing")  # a bug, loudly

    def _log_progress(self, started: float) -> None:
        with self._cond:
            have = min(len(self._done) * self.plan.piece_size, self.plan.total)
            received, active = self._received, self._active
        rate = received / max(time.monotonic() - started, 1e-9)
        log_progress(self.label, have, self.plan.total, rate, f", {active} connections")

    def _next_ready(self) -> bool:
        return self._hashed < self.plan.total and self._hashed // self.plan.piece_size in self._done

    def _prefix(self) -> int:
        with self._cond:
            count = self._hashed // self.plan.piece_size
            while count in self._done:
                count += 1
        return min(count * self.plan.piece_size, self.plan.total)

    def _hash_until(self, fd: int, pipe: HashPipeline, end: int) -> None:
        """Feed ``[hashed, end)`` from the file (page cache) to the hashes, a chunk at a time."""
        chunk = self.ctx.settings.chunk_size
        while self._hashed < end:
            data = os.pread(fd, min(chunk, end - self._hashed), self._hashed)
            if not data:
                raise OSError(errno.EIO, f"short read at {self._hashed} in {self.part}")
            pipe.feed(data, to_file=False)
            with self._cond:
                self._hashed += len(data)
                self._cond.notify_all()  # workers held back by the window may go on

    def _save(self, done: list[int]) -> None:
        sidecar = self.transfer.sidecar
        assert sidecar is not None
        sidecar.done = sorted(done)
        sidecar.save(self.transfer.final)

    # -- worker threads: one connection each ----------------------------------------------------------------
    def _worker(self, number: int, fd: int) -> None:
        with self._cond:
            self._active += 1
        try:
            with plain_session() as session:
                while (index := self._take(number)) is not None:
                    self._fetch_piece(session, fd, index)
                    with self._cond:
                        self._done.add(index)
                        self._cond.notify_all()
        except BaseException as exc:
            with self._cond:
                if self._error is None:
                    self._error = exc
                self._cond.notify_all()
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def _take(self, number: int) -> int | None:
        """The next missing piece within the window, or None when done, failed, or this connection was shed."""
        with self._cond:
            while True:
                if self._error is not None or not self._todo or number >= self._allowed:
                    return None
                if self._todo[0] * self.plan.piece_size < self._hashed + self.window:
                    return self._todo.pop(0)
                self._cond.wait(0.5)

    def _fetch_piece(self, session: requests.Session, fd: int, index: int) -> None:
        retry = self.ctx.retry
        start = index * self.plan.piece_size
        end = min(start + self.plan.piece_size, self.plan.total)
        pos, failures = start, 0
        while pos < end:
            if self._error is not None:
                raise Stop()
            url, generation = self.transfer.remote.url, self.source.generation
            before = pos
            try:
                pos = self._request(session, fd, url, pos, end, generation)
                continue
            except Retry as exc:
                failures = 1 if exc.pos > before else failures + 1
                pos = exc.pos
                if failures >= retry.attempts:
                    raise DownloadError(
                        self.ctx.provider,
                        f"{self.label}: piece {index} (bytes {start}-{end - 1}) failed {failures} times without "
                        f"progress: {exc}; finished pieces stay in staging and a retry fetches only the rest",
                        retry_after=exc.retry_after,
                    ) from None
                delay = retry.delay(failures, exc.retry_after)
                log.warning("%s: piece %d: %s at byte %d; retrying in %.2fs", self.label, index, exc, pos, delay)
                time.sleep(delay)

    def _request(self, session: requests.Session, fd: int, url: str, pos: int, end: int, generation: int) -> int:
        """One ranged GET of ``[pos, end)``; returns the new position (``end``) or raises ``Retry``."""
        settings, scrub = self.ctx.settings, self.ctx.scrub
        headers = hdr.request_headers(Range=f"bytes={pos}-{end - 1}")
        if self.plan.validator:
            headers["If-Range"] = self.plan.validator
        try:
            resp = session.get(url, headers=headers, stream=True, timeout=settings.timeout, verify=settings.verify_tls)
        except requests.RequestException as exc:
            raise Retry(scrub(f"request failed: {type(exc).__name__}: {exc}"), pos=pos) from None
        with resp:
            status = resp.status_code
            where = f"GET {redact_url(resp.url)} answered HTTP {status}"
            if status in hdr.EXPIRED:
                self._refresh(generation, where)
                raise Retry(f"{where}; fresh URL", retry_after=0, pos=pos)
            if status in hdr.SLOW_DOWN:
                self._slow_down(where)
            if is_transient_status(status):
                raise Retry(where, parse_retry_after(resp.headers.get("Retry-After")), pos=pos)
            if status == 200:
                raise VersionChanged("a range request was answered with the whole file (a new version, or the "
                                     "server stopped honouring ranges)")
            if status != 206 or not resp.headers.get("Content-Range", "").startswith(f"bytes {pos}-"):
                raise FatalDownloadError(self.ctx.provider, f"{where} with Content-Range "
                                         f"{resp.headers.get('Content-Range')!r} to bytes={pos}-{end - 1}")
            known = Sidecar(self.plan.validator, self.plan.total)
            if changed := hdr.changes(known, hdr.validator(resp.headers), hdr.total(status, resp.headers)):
                raise VersionChanged(f"the remote file changed ({changed})")
            try:
                while pos < end and (chunk := resp.raw.read(min(settings.range_read, end - pos), decode_content=False)):
                    os.pwrite(fd, chunk, pos)
                    pos += len(chunk)
                    with self._cond:
                        self._received += len(chunk)
                    if self._error is not None:
                        raise Stop()
            except READ_ERRORS as exc:
                raise Retry(scrub(f"connection lost mid-piece: {type(exc).__name__}: {exc}"), pos=pos) from None
        if pos < end:
            raise Retry(f"piece body ended at byte {pos} of {end}", pos=pos)
        return pos

    def _refresh(self, generation: int, why: str) -> None:
        """One fresh URL for every connection: only the first to see the expiry of a URL asks for a new one."""
        self.source.refresh(why, self.transfer, self.label, seen=generation, audience=" (for all connections)")

    def _slow_down(self, why: str) -> None:
        with self._cond:
            if self._allowed > 1:
                self._allowed -= 1
                log.warning("%s: %s; down to %d connections", self.label, why, self._allowed)
