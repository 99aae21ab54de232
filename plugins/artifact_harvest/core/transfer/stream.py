"""The single stream: one GET from the end of the staging file, resumed with ``Range``/``If-Range`` after drops,
until the file is complete; a big file's stream that waits on the link raises ``NetworkBound`` (hand-over)."""

from __future__ import annotations

import http.client
import logging
import time
from collections.abc import Callable

import requests
import urllib3

from artifact_harvest.core.errors import DownloadError, FatalDownloadError
from artifact_harvest.core.redact import redact_url
from artifact_harvest.core.retry import is_transient_status, parse_retry_after
from artifact_harvest.core.session import plain_session
from artifact_harvest.core.transfer import headers as hdr
from artifact_harvest.core.transfer.context import Context
from artifact_harvest.core.transfer.flow import FlowMeter
from artifact_harvest.core.transfer.pipeline import HashPipeline
from artifact_harvest.core.transfer.progress import Progress
from artifact_harvest.core.transfer.source import UrlSource
from artifact_harvest.core.transfer.values import Expired, NetworkBound, Retry, Transfer

log = logging.getLogger(__name__)

#: what a body read raises when the connection fails (reads never touch the disk: any OSError is the socket's)
READ_ERRORS = (urllib3.exceptions.HTTPError, requests.RequestException, http.client.HTTPException, OSError)


class SingleStream:
    """Fetches ``transfer``'s file to its end through ``pipe``; see the module docstring."""

    def __init__(self, ctx: Context, source: UrlSource, transfer: Transfer, pipe: HashPipeline, label: str) -> None:
        self.ctx, self.source, self.transfer, self.pipe, self.label = ctx, source, transfer, pipe, label

    def run(self, adaptive: bool = False) -> int:
        """Attempts until complete; returns the offset the last one started at.

        The failure count resets whenever an attempt made progress, so a long file on a flaky link gets there.
        ``adaptive``: raise ``NetworkBound`` when the stream is held back by the link.
        """
        ctx, transfer, pipe, label = self.ctx, self.transfer, self.pipe, self.label
        progress = Progress(label, ctx.settings.progress_interval, transfer.total)
        failures = 0
        self.source.new_budget()
        with plain_session() as session:
            while True:
                before = pipe.sync()
                ctx.disk.check(transfer.total, before, label)
                try:
                    return self._fetch(session, progress, adaptive)
                except Expired as exc:
                    expired = str(exc)
                except Retry as exc:
                    offset = pipe.sync()
                    failures = 1 if offset > before else failures + 1
                    if failures >= ctx.retry.attempts:
                        raise DownloadError(
                            ctx.provider,
                            f"{label}: giving up after {failures} attempts without progress: {exc}",
                            retry_after=exc.retry_after,
                        ) from None
                    delay = ctx.retry.delay(failures, exc.retry_after)
                    log.warning("%s: %s at byte %d; retrying in %.2fs", label, exc, offset, delay)
                    time.sleep(delay)
                    continue
                self.source.refresh(expired, transfer, label)  # outside the except: no chained context

    def _fetch(self, session: requests.Session, progress: Progress, adaptive: bool) -> int:
        """One request from the current end of the staging file; returns the offset it started at."""
        settings, transfer, pipe = self.ctx.settings, self.transfer, self.pipe
        offset = pipe.sync()
        if transfer.total is not None and offset == transfer.total:
            return offset  # complete already (killed before the rename); verification follows
        headers = hdr.request_headers()
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if transfer.sidecar is not None and transfer.sidecar.validator:
                headers["If-Range"] = transfer.sidecar.validator
        try:
            resp = session.get(
                transfer.remote.url, headers=headers, stream=True, timeout=settings.timeout,
                verify=settings.verify_tls,
            )
        except requests.RequestException as exc:
            raise Retry(self.ctx.scrub(f"request failed: {type(exc).__name__}: {exc}")) from None
        with resp:
            start = self._accept(resp, offset)
            if start is None:
                return offset  # the server says nothing lies beyond what we have; verification decides
            offset = start
            total = progress.total = transfer.total
            progress.restart(offset)
            handing_over = adaptive and self._can_hand_over(resp, total)
            meter = FlowMeter(settings.parallel_after, offset) if handing_over else None
            readinto = body_reader(resp)
            while True:
                buf = pipe.buffer()
                reading = time.perf_counter()
                got = self._read(readinto, buf)
                if meter is not None:
                    meter.waited(time.perf_counter() - reading)
                if not got:
                    if missing := _short_of_length(resp):
                        raise Retry(f"body ended at byte {offset}, {missing} bytes short of its Content-Length")
                    break
                self.ctx.disk.write(pipe, buf[:got], self.label)
                offset += got
                progress.tick(offset)
                if total is not None and offset > total:
                    break  # more than announced: the size check reports it
                if meter is not None and total - offset >= 4 * settings.piece_size and meter.network_bound(offset):
                    raise NetworkBound(offset, start, meter)
        if transfer.total is not None and offset < transfer.total:
            raise Retry(f"body ended at byte {offset} of {transfer.total}")
        return start

    def _can_hand_over(self, resp: requests.Response, total: int | None) -> bool:
        """A stream may go on as ranges: a big file from a server that says it does ranges and names a version."""
        return (self.ctx.settings.wants_ranges(total) and resp.headers.get("Accept-Ranges", "").lower() == "bytes"
                and hdr.validator(resp.headers) is not None)

    def _accept(self, resp: requests.Response, offset: int) -> int | None:
        """Decide what a response means before reading its body.

        Returns the offset the body starts at, or None when a resume asked for bytes past the end (416 with
        ``Content-Range: bytes */<offset>``): the file is complete. A resume is accepted only for the version
        the staged bytes are of (same validator, same total); anything else restarts from byte 0.
        """
        transfer, pipe, label = self.transfer, self.pipe, self.label
        status = resp.status_code
        where = f"GET {redact_url(resp.url)} answered HTTP {status}"
        if status in hdr.EXPIRED:
            raise Expired(f"{where} {self._snippet(resp)}".rstrip())
        if is_transient_status(status):
            raise Retry(where, parse_retry_after(resp.headers.get("Retry-After")))
        content_range = resp.headers.get("Content-Range", "")
        validator, total = hdr.validator(resp.headers), hdr.total(status, resp.headers)
        if status == 416 and offset and content_range == f"bytes */{offset}" and transfer.total == offset:
            return None
        if status == 206 and offset and content_range.startswith(f"bytes {offset}-"):
            changed = hdr.changes(transfer.sidecar, validator, total)
            if not changed:
                return offset
            log.warning("%s: the remote file changed (%s); starting over from byte 0", label, changed)
            pipe.restart()
            transfer.forget()
            raise Retry(f"the remote file changed under the resume ({changed}); starting over")
        if status == 200:
            if offset:
                log.warning(
                    "%s: server sent the whole file to a resume (ignored Range, or a new version: If-Range); "
                    "starting over from byte 0", label,
                )
                pipe.restart()
            transfer.record(validator, total)
            self.ctx.disk.check(transfer.total, 0, label)
            return 0
        if status in (206, 416):
            pipe.restart()
            transfer.forget()
            raise Retry(f"{where} with an unexpected Content-Range {content_range!r}; starting over")
        raise FatalDownloadError(
            self.ctx.provider, f"{where} {self._snippet(resp)}".rstrip(), http_status=status,
            request_id=hdr.request_id(resp.headers),
        )

    def _read(self, readinto: Callable[[memoryview], int], buf: memoryview) -> int:
        try:
            return readinto(buf)
        except READ_ERRORS as exc:
            raise Retry(self.ctx.scrub(f"connection lost mid-body: {type(exc).__name__}: {exc}")) from None

    def _snippet(self, resp: requests.Response) -> str:
        """The start of an error body (object stores explain themselves there), scrubbed."""
        try:
            body = resp.raw.read(300, decode_content=True) or b""
        except Exception:  # the body only decorates the error message
            body = b""
        return self.ctx.scrub(" ".join(body.decode("utf-8", "replace").split()))


def body_reader(resp: requests.Response) -> Callable[[memoryview], int]:
    """``readinto`` of the body as sent (never decoded): straight from http.client's response under urllib3's
    (``_fp``: no bytes object per chunk, no copy), else ``resp.raw.read`` and a copy."""
    fp = getattr(resp.raw, "_fp", None)
    if isinstance(fp, http.client.HTTPResponse):
        return fp.readinto

    def read_and_copy(buf: memoryview) -> int:
        data = resp.raw.read(len(buf), decode_content=False)
        buf[: len(data)] = data
        return len(data)

    return read_and_copy


def _short_of_length(resp: requests.Response) -> int:
    """Bytes of the Content-Length that never came once http.client's body ended (urllib3's own read raises)."""
    fp = getattr(resp.raw, "_fp", None)
    return (fp.length or 0) if isinstance(fp, http.client.HTTPResponse) else 0
