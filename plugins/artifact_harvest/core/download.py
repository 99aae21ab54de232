"""Resumable, verified, constant-memory downloads into a staging directory; knows no provider.

The provider hands over a callable that returns a *fresh* ``RemoteFile`` (signed URLs expire); the
downloader streams it to ``<staging>/<key>/<filename>.part``, resumes with ``Range`` after drops or a
killed worker, asks for a new URL when the old one expires (403/410), and verifies size, md5 and sha256 in
the same pass. The partial file is fsynced and renamed to its final name only once every check has passed.

One version, whole: the first response's validator (ETag, else Last-Modified) and total length are kept in a
sidecar (``core.staging.Sidecar``) before any byte lands; every resume sends ``If-Range`` with it and checks
the total in ``Content-Range``. A 200 to a resume, another ETag or another total starts over from byte 0 with
fresh hashes: never a splice of two versions. The size is always checked (the server's total when the
provider announces none). Callers that archive hold ``key_lock`` around download and archive (one writer).

Speed: the body is read in big chunks (urllib3, 2 MiB); the reading thread writes each chunk and runs the
faster digest while a thread of its own runs the slower one (``_Pipeline``), so network, disk, md5 and
sha256 overlap. md5 is the slowest of them (sequential, single core), so it is computed only when
the provider gives an expected md5 to check (or ``always_md5=True``); otherwise ``DownloadedFile.md5`` is
``None`` and the manifest says ``null``.

Secrets: a signed URL carries its credentials in the query string. It is used for the request and nothing
else: logs and exceptions get ``redact_url``/``Redactor`` output only, and no exception is chained to a
transport error whose text might carry the query.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from artifact_harvest.core.errors import FatalProviderError, ProviderError
from artifact_harvest.core.ranged import FlowMeter, RangedFetch, RangedPlan, VersionChanged
from artifact_harvest.core.staging import BackgroundSync, Sidecar, fsync_path, key_lock
from artifact_harvest.core.http import (
    USER_AGENT,
    Redactor,
    RetryRule,
    _conf_float,
    is_transient_status,
    parse_retry_after,
    redact_url,
)

log = logging.getLogger(__name__)

_MAX_SEGMENT = 200  # leaves room for ".part" / temp suffixes under the usual 255-byte name limit
_UNSAFE = re.compile(r"[^\w.\-+=@,() ]")
_EXPIRED = (403, 410)
_REQUEST_ID_HEADERS = ("x-request-id", "x-oss-request-id", "x-amz-request-id", "x-bce-request-id")
_WRITEBACK_EVERY = 64 << 20  # start an fdatasync in the background after this many new bytes
_BARE_QUERY = re.compile(r"(/[^\s?'\"]*)\?[^\s'\"()]+")  # urllib3 writes "url: /path?query" without a scheme


class _ScrubQueries(logging.Filter):
    """urllib3 logs every request line, query string included, at DEBUG: cut the query off."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _BARE_QUERY.sub(r"\1?***", a) if isinstance(a, str) and "?" in a else a for a in record.args
            )
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_ScrubQueries())


@dataclass(frozen=True)
class RemoteFile:
    """What a provider says about one artifact, right before it is fetched."""

    url: str  # may be a signed URL: never logged with its query string, never stored
    filename: str
    size: int | None = None  # expected bytes when the provider says so
    md5: str | None = None  # expected md5 hex when the provider gives one


@dataclass(frozen=True)
class DownloadedFile:
    """A complete, verified file in staging (``md5`` is None when it was not needed, see module doc)."""

    path: Path
    filename: str
    size: int
    sha256: str
    md5: str | None
    seconds: float
    resumed_from: int  # offset of the request that finished the file (0: fetched in one go)


class DownloadError(ProviderError):
    """The download did not complete; Airflow's task retries apply and resume from the partial file."""


class IntegrityError(DownloadError):
    """Size or md5 did not match what the provider announced; the partial data has been deleted."""


class FatalDownloadError(DownloadError, FatalProviderError):
    """Retrying cannot help (404, refused input): the task fails at once."""


class ProviderChecksumError(IntegrityError, FatalDownloadError):
    """One uninterrupted pass from byte 0 gave bytes that disagree with the provider's own size or md5.

    A retry would fetch the same bytes again (for Qianfan, up to ~100 GB), so the task fails at once. A
    mismatch after a resumed download stays a plain, retryable ``IntegrityError``: the retry starts clean.
    """


class InsufficientDiskSpace(DownloadError):
    """The staging filesystem cannot hold the rest of the file; the valid partial data stays for the retry."""


class UnsupportedScheme(FatalDownloadError):
    """Only http(s) URLs are fetched (no file://, ftp://, ...)."""


class _Transient(Exception):
    """One attempt failed in a way another attempt may fix."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _NetworkBound(Exception):
    """One stream is held back by the link (``FlowMeter``): hand the rest of the file over to ranges."""

    def __init__(self, offset: int, started_at: int, meter: FlowMeter) -> None:
        super().__init__(f"network-bound at byte {offset}")
        self.offset, self.started_at, self.meter = offset, started_at, meter


class _Expired(Exception):
    """The (signed) URL was refused: ask the provider for a fresh one."""


def safe_segment(value: str, what: str = "path segment") -> str:
    """One path segment built from untrusted text: separators and odd characters become ``_``."""
    cleaned = _UNSAFE.sub("_", str(value).replace("/", "_").replace("\\", "_")).strip()
    if cleaned in ("", ".", "..") or len(cleaned) > _MAX_SEGMENT:
        raise FatalProviderError("download", f"unusable {what} {value!r}")
    return cleaned


def safe_filename(name: str) -> str:
    """The basename of an untrusted file name (``../../etc/passwd`` -> ``passwd``), made safe."""
    return safe_segment(str(name).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1], "file name")


class _Pipeline:
    """Each chunk is written to the staging file and digested; the slowest digest runs on a thread of its own.

    The calling thread writes the chunk, queues it for the digest thread (md5 when wanted, else sha256), and
    runs the other digest inline. hashlib releases the GIL on big buffers and the network read and the file
    write are system calls, so the digest thread keeps a core to itself while the reading thread does the rest.
    Every extra thread would cost GIL hand-overs per chunk that, on two cores, come out of that digest's share:
    measured here, md5 went from ~0.8 to ~1.0 of its speed alone (sha256 has SHA-NI: ~2x md5's speed).
    Chunks are immutable ``bytes`` and the queue is bounded: memory stays at a few chunks.
    """

    def __init__(self, part: Path | None, with_md5: bool) -> None:
        self._file = open(part, "ab") if part is not None else None  # noqa: SIM115 - closed in close()
        self.written = self._file.tell() if self._file else 0
        self._writeback = BackgroundSync(self._file.fileno()) if self._file else None
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
            if self.written - self._synced >= _WRITEBACK_EVERY and self._writeback.kick():
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

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._file is not None:
            try:
                self._writeback.wait()
            except OSError:
                pass  # the file is being abandoned or was fsynced already; its fd must not close under the sync
            self._file.close()


class _Progress:
    """Logs bytes, percent, MB/s and ETA at most every ``interval`` seconds (never with the URL)."""

    def __init__(self, label: str, interval: float, total: int | None) -> None:
        self.label, self.interval, self.total = label, interval, total
        self._t0 = self._last = time.monotonic()
        self._b0 = 0

    def restart(self, offset: int) -> None:
        self._t0, self._b0 = time.monotonic(), offset

    def tick(self, offset: int) -> None:
        now = time.monotonic()
        if self.interval <= 0 or now - self._last < self.interval:
            return
        self._last = now
        rate = (offset - self._b0) / max(now - self._t0, 1e-9)
        if self.total:
            eta = f"{(self.total - offset) / rate:.0f}s" if rate > 0 else "?"
            log.info(
                "%s: %d of %d bytes (%.1f%%) at %.1f MB/s, ETA %s",
                self.label, offset, self.total, 100 * offset / self.total, rate / 1e6, eta,
            )
        else:
            log.info("%s: %d bytes at %.1f MB/s", self.label, offset, rate / 1e6)


@dataclass
class _Transfer:
    """One download's moving parts: the latest URL, and which remote version the staged bytes are of."""

    remote: RemoteFile
    sidecar: Sidecar | None = None
    final: Path = field(default_factory=Path)

    @property
    def total(self) -> int | None:
        """The length the file must reach: the server's total once known, else what the provider announced."""
        if self.sidecar is not None and self.sidecar.total is not None:
            return self.sidecar.total
        return self.remote.size

    def record(self, validator: str | None, total: int | None) -> None:
        """A response from byte 0 names the version the staged bytes are of; durable before any byte lands."""
        self.sidecar = Sidecar(validator, total)
        self.sidecar.save(self.final)

    def forget(self) -> None:
        self.sidecar = None
        Sidecar.remove(self.final)


class Downloader:
    """Streams one remote file into staging, resumable and verified; see the module docstring."""

    #: a clean pass whose bytes disagree is fetched once more; a resumed pass that disagrees starts clean
    max_passes = 3

    def __init__(
        self,
        staging_dir: Path,
        *,
        provider: str = "download",
        retry: RetryRule | None = None,
        chunk_size: int = 2 << 20,  # 4 MiB measured no faster and held ~10 MB more
        progress_interval: float | None = None,
        verify_tls: bool = True,
        timeout: tuple[float, float] = (10, 60),
        max_url_refreshes: int = 5,
        always_md5: bool = False,
        connections: int | None = None,
        piece_size: int | None = None,
        parallel_threshold: int | None = None,
        parallel_after: int | None = None,
    ) -> None:
        """The ranged fetch (``core.ranged``), per call or ``[artifact_harvest]``: files of at least
        ``parallel_threshold`` bytes (64 MiB) start as one stream; once ``parallel_after`` bytes (16 MiB, and
        half a second) show the stream waiting on the link, the rest comes as ``connections`` ranges (16; 1: never)
        of ``piece_size`` (8 MiB). ``parallel_after=0``: ranges from the first byte (a link known to be far)."""
        self.staging_dir = Path(staging_dir)
        self.provider = provider
        self.retry = retry or RetryRule()
        self.chunk_size = chunk_size
        self.progress_interval = (
            _conf_float("progress_interval", 30.0) if progress_interval is None else progress_interval
        )
        self.verify_tls = verify_tls
        self.timeout = timeout
        self.max_url_refreshes = max_url_refreshes
        self.always_md5 = always_md5
        self.connections = int(_conf_float("download_connections", 16) if connections is None else connections)
        self.piece_size = int(_conf_float("download_piece_size", 8 << 20) if piece_size is None else piece_size)
        self.parallel_threshold = int(
            _conf_float("parallel_threshold", 64 << 20) if parallel_threshold is None else parallel_threshold
        )
        self.parallel_after = int(
            _conf_float("parallel_after", 16 << 20) if parallel_after is None else parallel_after
        )
        self.redact = Redactor()

    # -- public ------------------------------------------------------------------------------------
    def download(self, fresh_url: Callable[[], RemoteFile], *, key: str) -> DownloadedFile:
        """Fetch the file ``fresh_url()`` describes into ``<staging>/<key>/``; resume what is there.

        Integrity policy: bytes that disagree with the provider after one clean pass from byte 0 are fetched
        once more from byte 0; only the same wrong bytes twice are fatal (``ProviderChecksumError``). A resumed
        pass that disagrees starts over clean.
        """
        started = time.monotonic()
        remote = self._checked(fresh_url())
        name = safe_filename(remote.filename)
        folder = self.staging_dir / safe_segment(key, "artifact key")
        folder.mkdir(parents=True, exist_ok=True)
        final, part = folder / name, folder / f"{name}.part"
        label = f"[{self.provider}] {key}/{name}"
        with_md5 = self.always_md5 or remote.md5 is not None

        if final.exists():
            reused = self._reuse_final(final, part, remote, with_md5, label)
            if reused is not None:
                return reused

        first_wrong: tuple[tuple, str] | None = None  # (size, md5, sha256) and problem of a clean pass
        for _ in range(self.max_passes):
            transfer = _Transfer(remote, Sidecar.load(final), final)
            self._forget_unknown_partial(part, transfer, label)
            plan = self._ranged_plan(transfer, part, fresh_url, label)
            if plan is None:
                self._as_plain_prefix(part, transfer)
            pipe = _Pipeline(None if plan else part, with_md5)
            try:
                if plan is not None:
                    resumed_from = RangedFetch(self, transfer, plan, part, fresh_url, label).run(pipe)
                else:
                    if offset := self._rehash(part, pipe):
                        log.info("%s: resuming from %d bytes already in staging", label, offset)
                    resumed_from = self._stream(fresh_url, transfer, part, pipe, label)
                pipe.sync(durable=True)
                size = part.stat().st_size
                problem = self._mismatch(size, transfer, pipe)
            except VersionChanged as exc:
                pipe.close()
                part.unlink(missing_ok=True)
                transfer.forget()
                remote = transfer.remote
                log.warning("%s: %s; starting the whole file over from byte 0", label, exc)
                continue
            except FatalDownloadError:
                pipe.close()
                part.unlink(missing_ok=True)
                transfer.forget()
                raise
            except BaseException:
                pipe.close()
                if not part.exists() or not part.stat().st_size:
                    part.unlink(missing_ok=True)
                    transfer.forget()
                raise
            remote = transfer.remote
            if problem is None:
                return self._finish(part, final, transfer, pipe, started, resumed_from, label)
            digests = (size, pipe.hexdigest("md5"), pipe.hexdigest("sha256"))
            pipe.close()
            part.unlink(missing_ok=True)
            transfer.forget()
            if resumed_from:
                log.warning("%s: %s after a resumed download; starting over from byte 0", label, problem)
                continue
            if first_wrong is None:
                first_wrong = (digests, problem)
                log.warning("%s: %s after a clean pass from byte 0; downloading once more from byte 0", label, problem)
                continue
            if first_wrong[0] == digests:
                raise ProviderChecksumError(
                    self.provider,
                    f"{key}/{name}: two clean downloads from byte 0 gave the same bytes (sha256 {digests[2]}) and "
                    f"both disagree with the provider: first pass {first_wrong[1]}; second pass {problem}; "
                    "partial data deleted",
                    hint="the provider's file or its announced checksum is wrong; ask the provider",
                )
            raise IntegrityError(
                self.provider,
                f"{key}/{name}: two clean downloads gave different wrong bytes (first pass {first_wrong[1]}; "
                f"second pass {problem}): the transfer is corrupting data; partial data deleted",
            )
        raise IntegrityError(
            self.provider, f"{key}/{name}: no pass out of {self.max_passes} gave verified bytes; partial data deleted"
        )

    def key_lock(self, key: str) -> AbstractContextManager[None]:
        """The exclusive lock of ``key``'s staging folder: hold it around download *and* archive."""
        folder = self.staging_dir / safe_segment(key, "artifact key")
        return key_lock(folder, label=f"[{self.provider}] {key}", provider=self.provider)

    @staticmethod
    def release(file: DownloadedFile) -> None:
        """The file has left staging (archived): its sidecar has nothing left to describe."""
        if not file.path.exists():
            Sidecar.remove(file.path)

    # -- steps -------------------------------------------------------------------------------------
    def _checked(self, remote: RemoteFile) -> RemoteFile:
        """Refuse anything but http(s); hide the new URL's query from logs and masked output."""
        scheme = urlsplit(remote.url).scheme.lower()
        if scheme not in ("http", "https"):
            raise UnsupportedScheme(
                self.provider,
                f"refusing to download {redact_url(remote.url)!r}: scheme {scheme or 'none'!r} is not http(s)",
            )
        self.redact.add(urlsplit(remote.url).query)
        return remote

    def _reuse_final(
        self, final: Path, part: Path, remote: RemoteFile, with_md5: bool, label: str
    ) -> DownloadedFile | None:
        """A finished file from an earlier attempt (the archive step failed after it): re-verify, then reuse it.

        It is checked against the digests recorded when it was verified (sidecar) and whatever the provider
        announces; a file nothing can vouch for is downloaded again.
        """
        started = time.monotonic()
        transfer = _Transfer(remote, Sidecar.load(final), final)
        pipe = _Pipeline(None, with_md5 or (transfer.sidecar is not None and transfer.sidecar.md5 is not None))
        vouched = remote.md5 is not None or (transfer.sidecar is not None and transfer.sidecar.sha256 is not None)
        try:
            size = self._rehash(final, pipe)
            problem = self._mismatch(size, transfer, pipe) if vouched else "nothing recorded to verify it against"
            if problem is None:
                log.info("%s: re-verified file already in staging, not downloading again", label)
                part.unlink(missing_ok=True)
                return self._result(final, pipe, started, size, size)
        finally:
            pipe.close()
        log.warning("%s: file already in staging is not trusted (%s); downloading again", label, problem)
        final.unlink()
        transfer.forget()
        return None

    @staticmethod
    def _forget_unknown_partial(part: Path, transfer: _Transfer, label: str) -> None:
        """Bytes in staging with no record of which version they are of cannot be resumed: start over.

        Without a validator (the server sent neither ETag nor Last-Modified) only a provider md5 would catch a
        splice, so such a partial is resumed only when there is one.
        """
        if not part.exists():
            return
        sidecar = transfer.sidecar
        if sidecar is not None and (sidecar.validator or transfer.remote.md5):
            return
        if part.stat().st_size:
            log.warning("%s: partial file in staging has no record of its version; starting from byte 0", label)
        part.unlink()
        transfer.forget()

    def _wants_ranges(self, total: int | None) -> bool:
        """Ranges are allowed for this file (a big one, more than one connection configured)."""
        return self.connections > 1 and total is not None and total >= self.parallel_threshold

    def _stream(
        self, fresh_url: Callable[[], RemoteFile], transfer: _Transfer, part: Path, pipe: _Pipeline, label: str
    ) -> int:
        """One stream; a big file whose stream turns out network-bound goes on as ranges from where it is."""
        try:
            adaptive = self._wants_ranges(transfer.total)
            return self._fetch_with_retries(fresh_url, transfer, pipe, label, adaptive=adaptive)
        except _NetworkBound as bound:
            pipe.sync()
            plan = self._ranged_plan(transfer, part, fresh_url, label, handover=True)
            if plan is None:  # the server would not do ranges after all: the stream goes on
                return self._fetch_with_retries(fresh_url, transfer, pipe, label, adaptive=False)
            waiting, idle, rate = bound.meter.last
            log.info("%s: one stream waits on the network %.0f%% of the time at %.1f MB/s with %.0f%% of the CPU "
                     "idle: the remaining %d bytes as %d ranges", label, 100 * waiting, rate, 100 * idle,
                     plan.total - bound.offset, plan.connections)
            RangedFetch(self, transfer, plan, part, fresh_url, label, hashed=bound.offset).run(pipe)
            return bound.started_at

    def _ranged_plan(
        self, transfer: _Transfer, part: Path, fresh_url: Callable[[], RemoteFile], label: str,
        handover: bool = False,
    ) -> RangedPlan | None:
        """Ranges for a big file from a server that honours them (a 206 to a one-byte probe) and names its
        version (a validator for ``If-Range``); None: one stream. Reconciles what is staged with the answer.

        Before any stream (``handover=False``) only when ``parallel_after`` is 0 or the staged partial is
        already in pieces; otherwise the stream's ``FlowMeter`` decides (``_stream``)."""
        total = transfer.total
        if not self._wants_ranges(total):
            return None
        known = transfer.sidecar
        if not handover and self.parallel_after and not (known is not None and known.piece_size and part.exists()):
            return None
        answer = self._probe(transfer, fresh_url, label)
        if answer is None:
            return None
        validator, total = answer
        if total < self.parallel_threshold:
            return None
        same = known is not None and part.exists() and not _changes(known, validator, total) and known.validator
        if handover and not same:  # the stream's hashes are of another version: never splice the two
            raise VersionChanged("the remote file changed as the stream went on as ranges")
        if same:
            prefix = known.prefix if known.piece_size else part.stat().st_size
            done = set(known.done or ()) if known.piece_size == self.piece_size else set()
            done |= set(range(prefix // self.piece_size))
        else:
            if part.exists():
                log.warning("%s: staged bytes are of another version of the file; starting over", label)
                part.unlink()
            done = set()
        transfer.sidecar = Sidecar(validator, total, piece_size=self.piece_size, done=sorted(done))
        transfer.sidecar.save(transfer.final)
        return RangedPlan(self.connections, self.piece_size, validator, total)

    def _probe(self, transfer: _Transfer, fresh_url: Callable[[], RemoteFile], label: str) -> tuple[str, int] | None:
        """``(validator, total)`` from a ``Range: bytes=0-0`` GET, or None when ranges are not for this server."""
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Range": "bytes=0-0"}
        with requests.Session() as session:
            session.trust_env = False  # as every other request of the downloader: no proxy from the environment
            for _ in range(2):  # an expired URL is refreshed once here; the single stream handles the rest
                try:
                    with session.get(transfer.remote.url, headers=headers, stream=True, timeout=self.timeout,
                                     verify=self.verify_tls) as resp:
                        status, validator, total = resp.status_code, _validator(resp), _total(resp)
                        content_range = resp.headers.get("Content-Range", "")
                except requests.RequestException:
                    return None
                if status in _EXPIRED:
                    transfer.remote = self._checked(fresh_url())
                    continue
                if status == 206 and content_range.startswith("bytes 0-0/") and total and validator:
                    return validator, total
                log.info("%s: server answered a range probe with HTTP %d; one stream", label, status)
                return None
        return None

    @staticmethod
    def _as_plain_prefix(part: Path, transfer: _Transfer) -> None:
        """A ranged partial fetched on as one stream keeps only its finished leading pieces."""
        sidecar = transfer.sidecar
        if sidecar is None or sidecar.piece_size is None:
            return
        if part.exists():
            with open(part, "r+b") as f:
                f.truncate(sidecar.prefix)
        sidecar.piece_size = sidecar.done = None
        sidecar.save(transfer.final)

    def _finish(
        self, part: Path, final: Path, transfer: _Transfer, pipe: _Pipeline, started: float, resumed_from: int,
        label: str,
    ) -> DownloadedFile:
        """Record the verified digests, then rename into place; both durable (the bytes were fsynced)."""
        sha256, md5 = pipe.hexdigest("sha256"), pipe.hexdigest("md5")
        pipe.close()
        sidecar = transfer.sidecar or Sidecar(None, None)
        sidecar.sha256, sidecar.md5 = sha256, md5
        sidecar.save(final)
        os.replace(part, final)
        fsync_path(final.parent)
        result = DownloadedFile(
            path=final, filename=final.name, size=final.stat().st_size, sha256=sha256 or "", md5=md5,
            seconds=time.monotonic() - started, resumed_from=resumed_from,
        )
        log.info(
            "%s: %d bytes in %.1fs (%.1f MB/s), sha256 %s",
            label, result.size, result.seconds, result.size / max(result.seconds, 1e-9) / 1e6, result.sha256,
        )
        return result

    def _rehash(self, path: Path, pipe: _Pipeline) -> int:
        """Feed the bytes already on disk to the hashes; returns how many there are."""
        if not path.exists():
            return 0
        size = 0
        with open(path, "rb") as f:
            while chunk := f.read(self.chunk_size):
                pipe.feed(chunk, to_file=False)
                size += len(chunk)
        return size

    def _fetch_with_retries(
        self, fresh_url: Callable[[], RemoteFile], transfer: _Transfer, pipe: _Pipeline, label: str,
        adaptive: bool = False,
    ) -> int:
        """Attempts until complete; returns the offset the last one started at.

        The failure count resets whenever an attempt made progress, so a long file on a flaky link gets there.
        ``adaptive``: raise ``_NetworkBound`` when the stream is held back by the link (see ``_stream``).
        """
        session = requests.Session()
        session.trust_env = False
        progress = _Progress(label, self.progress_interval, transfer.total)
        failures = refreshes = 0
        try:
            while True:
                before = pipe.sync()
                self._check_disk(transfer.total, before, label)
                try:
                    return self._fetch(session, transfer, pipe, progress, label, adaptive)
                except _Expired as exc:
                    refreshes += 1
                    if refreshes > self.max_url_refreshes:
                        raise FatalDownloadError(
                            self.provider,
                            f"{label}: URL still refused after {self.max_url_refreshes} fresh URLs: {exc}",
                        ) from None
                    log.warning("%s: %s; asking the provider for a fresh URL", label, exc)
                    transfer.remote = self._checked(fresh_url())
                except _Transient as exc:
                    offset = pipe.sync()
                    failures = 1 if offset > before else failures + 1
                    if failures >= self.retry.attempts:
                        raise DownloadError(
                            self.provider,
                            f"{label}: giving up after {failures} attempts without progress: {exc}",
                            retry_after=exc.retry_after,
                        ) from None
                    delay = self.retry.delay(failures, exc.retry_after)
                    log.warning("%s: %s at byte %d; retrying in %.2fs", label, exc, offset, delay)
                    time.sleep(delay)
        finally:
            session.close()

    def _check_disk(self, size: int | None, offset: int, label: str) -> None:
        """Too little room for the rest: keep the valid partial and fail retryably, saying what to free."""
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

    def _fetch(
        self, session: requests.Session, transfer: _Transfer, pipe: _Pipeline, progress: _Progress, label: str,
        adaptive: bool = False,
    ) -> int:
        """One request from the current end of the staging file; returns the offset it started at."""
        offset = pipe.sync()
        if transfer.total is not None and offset == transfer.total:
            return offset  # complete already (killed before the rename); verification follows
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if transfer.sidecar is not None and transfer.sidecar.validator:
                headers["If-Range"] = transfer.sidecar.validator
        try:
            resp = session.get(
                transfer.remote.url, headers=headers, stream=True, timeout=self.timeout, verify=self.verify_tls
            )
        except requests.RequestException as exc:
            raise _Transient(self._scrub(f"request failed: {type(exc).__name__}: {exc}")) from None
        with resp:
            start = self._accept(resp, transfer, pipe, offset, label)
            if start is None:
                return offset  # the server says nothing lies beyond what we have; verification decides
            offset = start
            total = progress.total = transfer.total
            progress.restart(offset)
            meter = FlowMeter(self.parallel_after, offset) if adaptive and self._can_hand_over(resp, total) else None
            while True:
                reading = time.perf_counter()
                chunk = self._read(resp)
                if meter is not None:
                    meter.waited(time.perf_counter() - reading)
                if not chunk:
                    break
                self._write(pipe, chunk, label)
                offset += len(chunk)
                progress.tick(offset)
                if total is not None and offset > total:
                    break  # more than announced: the size check reports it
                if meter is not None and total - offset >= 4 * self.piece_size and meter.network_bound(offset):
                    raise _NetworkBound(offset, start, meter)
        if transfer.total is not None and offset < transfer.total:
            raise _Transient(f"body ended at byte {offset} of {transfer.total}")
        return start

    def _can_hand_over(self, resp: requests.Response, total: int | None) -> bool:
        """A stream may go on as ranges: a big file from a server that says it does ranges and names a version."""
        return (self._wants_ranges(total) and resp.headers.get("Accept-Ranges", "").lower() == "bytes"
                and _validator(resp) is not None)

    def _accept(
        self, resp: requests.Response, transfer: _Transfer, pipe: _Pipeline, offset: int, label: str
    ) -> int | None:
        """Decide what a response means before reading its body.

        Returns the offset the body starts at, or None when a resume asked for bytes past the end (416 with
        ``Content-Range: bytes */<offset>``): the file is complete. A resume is accepted only for the version
        the staged bytes are of (same validator, same total); anything else restarts from byte 0.
        """
        status = resp.status_code
        where = f"GET {redact_url(resp.url)} answered HTTP {status}"
        if status in _EXPIRED:
            raise _Expired(f"{where} {self._snippet(resp)}".rstrip())
        if is_transient_status(status):
            raise _Transient(where, parse_retry_after(resp.headers.get("Retry-After")))
        content_range = resp.headers.get("Content-Range", "")
        validator, total = _validator(resp), _total(resp)
        known = transfer.sidecar
        if status == 416 and offset and content_range == f"bytes */{offset}" and transfer.total == offset:
            return None
        if status == 206 and offset and content_range.startswith(f"bytes {offset}-"):
            changed = _changes(known, validator, total)
            if not changed:
                return offset
            log.warning("%s: the remote file changed (%s); starting over from byte 0", label, changed)
            pipe.restart()
            transfer.forget()
            raise _Transient(f"the remote file changed under the resume ({changed}); starting over")
        if status == 200:
            if offset:
                log.warning(
                    "%s: server sent the whole file to a resume (ignored Range, or a new version: If-Range); "
                    "starting over from byte 0", label,
                )
                pipe.restart()
            transfer.record(validator, total)
            self._check_disk(transfer.total, 0, label)
            return 0
        if status in (206, 416):
            pipe.restart()
            transfer.forget()
            raise _Transient(f"{where} with an unexpected Content-Range {content_range!r}; starting over")
        raise FatalDownloadError(
            self.provider,
            f"{where} {self._snippet(resp)}".rstrip(),
            http_status=status,
            request_id=next((resp.headers[h] for h in _REQUEST_ID_HEADERS if h in resp.headers), None),
        )

    def _write(self, pipe: _Pipeline, chunk: bytes, label: str) -> None:
        """A full or failing staging disk fails the attempt; the bytes written so far stay for the retry."""
        try:
            pipe.feed(chunk)
        except OSError as exc:
            raise DownloadError(
                self.provider,
                f"{label}: cannot write to staging {self.staging_dir}: {exc.strerror or exc}",
                hint="free space or point the Variable artifact_staging_dir elsewhere; a retry resumes",
            ) from None

    def _read(self, resp: requests.Response) -> bytes:
        try:
            return resp.raw.read(self.chunk_size, decode_content=False)
        except (urllib3.exceptions.HTTPError, requests.RequestException, ConnectionError, TimeoutError) as exc:
            raise _Transient(self._scrub(f"connection lost mid-body: {type(exc).__name__}: {exc}")) from None

    def _scrub(self, text: str) -> str:
        """Transport errors may quote a redirect target's query that the redactor has never seen."""
        return self.redact(_BARE_QUERY.sub(r"\1?***", self.redact(text)))

    def _snippet(self, resp: requests.Response) -> str:
        """The start of an error body (object stores explain themselves there), scrubbed."""
        try:
            body = resp.raw.read(300, decode_content=True) or b""
        except Exception:  # the body only decorates the error message
            body = b""
        return self._scrub(" ".join(body.decode("utf-8", "replace").split()))

    @staticmethod
    def _mismatch(size: int, transfer: _Transfer, pipe: _Pipeline) -> str | None:
        """What disagrees with the provider's announcement, the server's total or the recorded digests."""
        remote, sidecar = transfer.remote, transfer.sidecar or Sidecar(None, None)
        for expected, what in ((remote.size, "the provider announced"), (sidecar.total, "the server announced")):
            if expected is not None and size != expected:
                return f"size {size} bytes, {what} {expected}"
        md5 = pipe.hexdigest("md5")
        if remote.md5 is not None and md5 != remote.md5.strip().lower():
            return f"md5 {md5}, the provider's md5 is {remote.md5}"
        for name, recorded in (("sha256", sidecar.sha256), ("md5", sidecar.md5)):
            if recorded is not None and (got := pipe.hexdigest(name)) is not None and got != recorded:
                return f"{name} {got}, verified earlier as {recorded}"
        return None

    @staticmethod
    def _result(path: Path, pipe: _Pipeline, started: float, resumed_from: int, size: int | None = None) -> DownloadedFile:
        return DownloadedFile(
            path=path,
            filename=path.name,
            size=path.stat().st_size if size is None else size,
            sha256=pipe.hexdigest("sha256") or "",
            md5=pipe.hexdigest("md5"),
            seconds=time.monotonic() - started,
            resumed_from=resumed_from,
        )


def _validator(resp: requests.Response) -> str | None:
    """What ``If-Range`` may carry: a strong ETag, else Last-Modified (RFC 9110 §13.1.5)."""
    etag = resp.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return resp.headers.get("Last-Modified")


def _total(resp: requests.Response) -> int | None:
    """The full length: the total in ``Content-Range`` of a 206/416, else a 200's ``Content-Length``."""
    content_range = resp.headers.get("Content-Range")
    if content_range:
        total = content_range.rsplit("/", 1)[-1].strip()
        return int(total) if total.isdigit() else None
    length = resp.headers.get("Content-Length", "")
    return int(length) if resp.status_code == 200 and length.isdigit() else None


def _changes(known: Sidecar | None, validator: str | None, total: int | None) -> str:
    """How a ranged answer's version differs from the one staged ('' when it is the same)."""
    if known is None:
        return "no record of the staged version"
    changes = []
    if validator and known.validator and validator != known.validator:
        changes.append(f"validator {known.validator} -> {validator}")
    if total is not None and known.total is not None and total != known.total:
        changes.append(f"total {known.total} -> {total} bytes")
    return ", ".join(changes)
