"""Parallel ranged fetch of one big file: N connections write pieces at their offsets into a preallocated
``.part``, while the calling thread hashes the contiguous prefix as it grows (verified in the same pass).

Why this shape:
- One TCP flow to a far object store gets tens of MB/s whatever the link; N flows get N times that.
- Pieces land with ``os.pwrite`` at their offsets; the hashes (md5 is sequential) follow the contiguous prefix,
  reading it back from page cache. Workers never start a piece more than ``window`` bytes past the hashed
  prefix, so the pages are still cached when read, and nothing out of order is buffered in memory.
- The sidecar (``core.staging.Sidecar``) doubles as the control file: the finished pieces are listed there,
  after an fdatasync of the data (in the background), about once a second. A killed worker loses at most the pieces in flight;
  the retry re-hashes the finished prefix and fetches only what is missing.
- Every range request carries ``If-Range`` with the first ETag; a piece answered with another ETag or total,
  or a 200, means another version: ``VersionChanged`` restarts the whole file (never a splice).
- Faults are per piece: retries with backoff, a dropped connection costs the rest of one piece; an expired URL
  is refreshed once for all connections; 429/503 lower the number of connections instead of failing.
- Ranges only where they pay: a big file starts as one stream, and ``FlowMeter`` watches how much of its time
  the stream spends waiting for the network and how idle the machine is (figures there). Only a stream held
  back by the link hands the rest of the file over to the ranged fetch, which carries on from the stream's
  hashes (no byte read twice); a probe that shows another version restarts the whole file instead.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import requests
import urllib3

from artifact_harvest.core.http import USER_AGENT, is_transient_status, parse_retry_after, redact_url
from artifact_harvest.core.staging import BackgroundSync, Sidecar

if TYPE_CHECKING:  # download.py imports this module; the types only
    from artifact_harvest.core.download import Downloader, RemoteFile, _Pipeline, _Transfer

log = logging.getLogger(__name__)

_SLOW_DOWN = (429, 503)
_EXPIRED = (403, 410)
_READ = 256 << 10  # per connection: 16 connections hold 4 MiB of buffers, not 32 (RSS)
_READ_ERRORS = (urllib3.exceptions.HTTPError, requests.RequestException, ConnectionError, TimeoutError)


class VersionChanged(Exception):
    """A range came back from another version of the file (or as a 200): the whole file starts over."""


class FlowMeter:
    """Tells whether one stream is held back by the link rather than by this machine: only then do more
    connections help.

    Held back by the link: the reader waits in ``recv`` for at least ``NETWORK_BOUND`` of the time *and* the
    machine has cores to spare (at least ``IDLE`` of its CPU time idle). The second half matters where the
    server shares this machine (loopback): there a reader also waits while the server waits for a core, and
    more connections only add work (measured: nginx on loopback, reader waiting ~50% with no core idle, 16
    ranges ran at 0.5-0.8 of one stream). Each window spans at least ``window_bytes`` and half a second.
    Measured (1 GiB, 2 cores): 40 MB/s per flow, waiting 0.77-0.97 with 0.78-0.89 idle; uncapped loopback
    (nginx, emulator), waiting 0.06-0.44 with 0.13-0.37 idle, never both above the thresholds.
    """

    NETWORK_BOUND = 0.6
    IDLE = 0.4

    def __init__(self, window_bytes: int, offset: int) -> None:
        self.window_bytes = window_bytes
        self.last: tuple[float, float, float] = (0.0, 0.0, 0.0)  # waiting share, idle share, MB/s of the last window
        self._restart(offset)

    def _restart(self, offset: int) -> None:
        self._start, self._t0, self._waited, self._cpu0 = offset, time.monotonic(), 0.0, psutil.cpu_times()

    def waited(self, seconds: float) -> None:
        self._waited += seconds

    def network_bound(self, offset: int) -> bool:
        """Called after each chunk; True at the end of a window held back by the link."""
        elapsed = time.monotonic() - self._t0
        if offset - self._start < self.window_bytes or elapsed < 0.5:
            return False
        self.last = (self._waited / elapsed, _idle_share(self._cpu0, psutil.cpu_times()),
                     (offset - self._start) / elapsed / 1e6)
        self._restart(offset)
        return self.last[0] >= self.NETWORK_BOUND and self.last[1] >= self.IDLE


def _idle_share(before, after) -> float:
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0.0) - getattr(before, "iowait", 0.0))
    return idle / total if total > 0 else 0.0


@dataclass(frozen=True)
class RangedPlan:
    connections: int
    piece_size: int
    validator: str | None
    total: int


class RangedFetch:
    """Fetches the missing pieces of ``transfer``'s file; see the module docstring."""

    def __init__(
        self, downloader: Downloader, transfer: _Transfer, plan: RangedPlan, part: Path,
        fresh_url: Callable[[], RemoteFile], label: str, hashed: int = 0,
    ) -> None:
        """``hashed``: bytes a single stream already fed to the hashes (a hand-over); the rest comes in pieces."""
        self.dl, self.transfer, self.plan, self.part = downloader, transfer, plan, part
        self.fresh_url, self.label = fresh_url, label
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
        self._url_lock = threading.Lock()
        self._url_generation = 0
        self._refreshes = 0
        self._received = 0  # bytes written by this run (progress only)

    # -- the calling thread: allocate, hash the prefix, keep the control file, report progress ------------
    def run(self, pipe: _Pipeline) -> int:
        """Returns how many bytes earlier runs had fetched (0: every byte came from this one, a clean pass)."""
        plan, sidecar = self.plan, self.transfer.sidecar
        assert sidecar is not None and sidecar.piece_size == plan.piece_size
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
                    self._error = _Stop()
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
        self.dl._check_disk(self.plan.total, size, self.label)
        try:
            os.posix_fallocate(fd, 0, self.plan.total)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            os.ftruncate(fd, self.plan.total)

    def _follow(self, fd: int, pipe: _Pipeline, workers: list[threading.Thread]) -> None:
        """Hash the prefix as pieces finish; every second make finished pieces durable and list them."""
        started = last_save = last_log = time.monotonic()
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
            interval = self.dl.progress_interval
            if interval > 0 and now - last_log >= interval:
                last_log = now
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
        eta = f"{(self.plan.total - have) / rate:.0f}s" if rate > 0 else "?"
        log.info("%s: %d of %d bytes (%.1f%%) at %.1f MB/s, ETA %s, %d connections",
                 self.label, have, self.plan.total, 100 * have / self.plan.total, rate / 1e6, eta, active)

    def _next_ready(self) -> bool:
        return self._hashed < self.plan.total and self._hashed // self.plan.piece_size in self._done

    def _prefix(self) -> int:
        with self._cond:
            count = self._hashed // self.plan.piece_size
            while count in self._done:
                count += 1
        return min(count * self.plan.piece_size, self.plan.total)

    def _hash_until(self, fd: int, pipe: _Pipeline, end: int) -> None:
        """Feed ``[hashed, end)`` from the file (page cache) to the hashes, a chunk at a time."""
        chunk = self.dl.chunk_size
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
        session = requests.Session()
        session.trust_env = False
        with self._cond:
            self._active += 1
        try:
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
            session.close()
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
        start = index * self.plan.piece_size
        end = min(start + self.plan.piece_size, self.plan.total)
        pos, failures = start, 0
        while pos < end:
            if self._error is not None:
                raise _Stop()
            url, generation = self.transfer.remote.url, self._url_generation
            before = pos
            try:
                pos = self._request(session, fd, url, pos, end, generation)
                continue
            except _Retry as exc:
                failures = 1 if exc.pos > before else failures + 1
                pos = exc.pos
                if failures >= self.dl.retry.attempts:
                    from artifact_harvest.core.download import DownloadError

                    raise DownloadError(
                        self.dl.provider,
                        f"{self.label}: piece {index} (bytes {start}-{end - 1}) failed {failures} times without "
                        f"progress: {exc}; finished pieces stay in staging and a retry fetches only the rest",
                        retry_after=exc.retry_after,
                    ) from None
                delay = self.dl.retry.delay(failures, exc.retry_after)
                log.warning("%s: piece %d: %s at byte %d; retrying in %.2fs", self.label, index, exc, pos, delay)
                time.sleep(delay)

    def _request(self, session: requests.Session, fd: int, url: str, pos: int, end: int, generation: int) -> int:
        """One ranged GET of ``[pos, end)``; returns the new position (``end``) or raises ``_Retry``."""
        from artifact_harvest.core.download import FatalDownloadError, _changes, _total, _validator

        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Range": f"bytes={pos}-{end - 1}"}
        if self.plan.validator:
            headers["If-Range"] = self.plan.validator
        try:
            resp = session.get(url, headers=headers, stream=True, timeout=self.dl.timeout, verify=self.dl.verify_tls)
        except requests.RequestException as exc:
            raise _Retry(self.dl._scrub(f"request failed: {type(exc).__name__}: {exc}"), pos) from None
        with resp:
            status = resp.status_code
            where = f"GET {redact_url(resp.url)} answered HTTP {status}"
            if status in _EXPIRED:
                self._refresh(generation, where)
                raise _Retry(f"{where}; fresh URL", pos, retry_after=0)
            if status in _SLOW_DOWN:
                self._slow_down(where)
            if is_transient_status(status):
                raise _Retry(where, pos, parse_retry_after(resp.headers.get("Retry-After")))
            if status == 200:
                raise VersionChanged("a range request was answered with the whole file (a new version, or the "
                                     "server stopped honouring ranges)")
            if status != 206 or not resp.headers.get("Content-Range", "").startswith(f"bytes {pos}-"):
                raise FatalDownloadError(self.dl.provider, f"{where} with Content-Range "
                                         f"{resp.headers.get('Content-Range')!r} to bytes={pos}-{end - 1}")
            known = Sidecar(self.plan.validator, self.plan.total)
            if changed := _changes(known, _validator(resp), _total(resp)):
                raise VersionChanged(f"the remote file changed ({changed})")
            try:
                while pos < end and (chunk := resp.raw.read(min(_READ, end - pos), decode_content=False)):
                    os.pwrite(fd, chunk, pos)
                    pos += len(chunk)
                    with self._cond:
                        self._received += len(chunk)
                    if self._error is not None:
                        raise _Stop()
            except _READ_ERRORS as exc:
                raise _Retry(self.dl._scrub(f"connection lost mid-piece: {type(exc).__name__}: {exc}"), pos) from None
        if pos < end:
            raise _Retry(f"piece body ended at byte {pos} of {end}", pos)
        return pos

    def _refresh(self, generation: int, why: str) -> None:
        """One fresh URL for every connection: only the first to see the expiry of a URL asks for a new one."""
        from artifact_harvest.core.download import FatalDownloadError

        with self._url_lock:
            if generation != self._url_generation:
                return  # another connection refreshed it already
            self._refreshes += 1
            if self._refreshes > self.dl.max_url_refreshes:
                raise FatalDownloadError(
                    self.dl.provider, f"{self.label}: URL still refused after {self.dl.max_url_refreshes} fresh URLs: {why}"
                )
            log.warning("%s: %s; asking the provider for a fresh URL (for all connections)", self.label, why)
            self.transfer.remote = self.dl._checked(self.fresh_url())
            self._url_generation += 1

    def _slow_down(self, why: str) -> None:
        with self._cond:
            if self._allowed > 1:
                self._allowed -= 1
                log.warning("%s: %s; down to %d connections", self.label, why, self._allowed)


class _Retry(Exception):
    """This piece's request failed at ``pos``; another attempt may fix it."""

    def __init__(self, message: str, pos: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.pos, self.retry_after = pos, retry_after


class _Stop(Exception):
    """Another connection failed: stop this one (the first error is the one reported)."""
