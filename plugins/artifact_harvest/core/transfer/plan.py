"""Single stream or ranges, chosen in one place: a big file from a server that honours ranges and names its
version. Reconciles what is staged with the server's answer (never a splice of two versions)."""

from __future__ import annotations

import logging
from pathlib import Path

import requests

from artifact_harvest.core.session import plain_session
from artifact_harvest.core.staging import Sidecar
from artifact_harvest.core.transfer import headers as hdr
from artifact_harvest.core.transfer.context import Context
from artifact_harvest.core.transfer.source import UrlSource
from artifact_harvest.core.transfer.values import RangedPlan, Transfer, VersionChanged

log = logging.getLogger(__name__)


def ranged_plan(
    ctx: Context, source: UrlSource, transfer: Transfer, part: Path, label: str, handover: bool = False
) -> RangedPlan | None:
    """Ranges for a big file from a server that honours them (a 206 to a one-byte probe) and names its version
    (a validator for ``If-Range``); None: one stream.

    Before any stream (``handover=False``) only when ``parallel_after`` is 0 or the staged partial is already in
    pieces; otherwise the stream's ``FlowMeter`` decides. On a hand-over, another version raises ``VersionChanged``.
    """
    settings = ctx.settings
    if not settings.wants_ranges(transfer.total):
        return None
    known = transfer.sidecar
    if not handover and settings.parallel_after and not (known is not None and known.piece_size and part.exists()):
        return None
    answer = _probe(ctx, source, transfer, label)
    if answer is None:
        return None
    validator, total = answer
    if total < settings.parallel_threshold:
        return None
    same = known is not None and part.exists() and not hdr.changes(known, validator, total) and known.validator
    if handover and not same:  # the stream's hashes are of another version: never splice the two
        raise VersionChanged("the remote file changed as the stream went on as ranges")
    if same:
        prefix = known.prefix if known.piece_size else part.stat().st_size
        done = set(known.done or ()) if known.piece_size == settings.piece_size else set()
        done |= set(range(prefix // settings.piece_size))
    else:
        if part.exists():
            log.warning("%s: staged bytes are of another version of the file; starting over", label)
            part.unlink()
        done = set()
    transfer.sidecar = Sidecar(validator, total, piece_size=settings.piece_size, done=sorted(done))
    transfer.sidecar.save(transfer.final)
    return RangedPlan(settings.connections, settings.piece_size, validator, total)


def _probe(ctx: Context, source: UrlSource, transfer: Transfer, label: str) -> tuple[str, int] | None:
    """``(validator, total)`` from a ``Range: bytes=0-0`` GET, or None when ranges are not for this server."""
    headers = hdr.request_headers(Range="bytes=0-0")
    with plain_session() as session:
        for _ in range(2):  # an expired URL is refreshed once here; the single stream handles the rest
            try:
                with session.get(transfer.remote.url, headers=headers, stream=True, timeout=ctx.settings.timeout,
                                 verify=ctx.settings.verify_tls) as resp:
                    status, content_range = resp.status_code, resp.headers.get("Content-Range", "")
                    validator, total = hdr.validator(resp.headers), hdr.total(status, resp.headers)
            except requests.RequestException:
                return None
            if status in hdr.EXPIRED:
                transfer.remote = source.fresh()
                continue
            if status == 206 and content_range.startswith("bytes 0-0/") and total and validator:
                return validator, total
            log.info("%s: server answered a range probe with HTTP %d; one stream", label, status)
            return None
    return None


def as_plain_prefix(part: Path, transfer: Transfer) -> None:
    """A ranged partial fetched on as one stream keeps only its finished leading pieces."""
    sidecar = transfer.sidecar
    if sidecar is None or sidecar.piece_size is None:
        return
    if part.exists():
        with open(part, "r+b") as f:
            f.truncate(sidecar.prefix)
    sidecar.piece_size = sidecar.done = None
    sidecar.save(transfer.final)
