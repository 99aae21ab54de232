"""Pure helpers over response headers: which version a response is of, its total length, what changed."""

from __future__ import annotations

from collections.abc import Mapping

from artifact_harvest.core.http import USER_AGENT
from artifact_harvest.core.staging import Sidecar

EXPIRED = (403, 410)  # a signed URL past its time: ask for a fresh one
SLOW_DOWN = (429, 503)  # the ranged fetch drops a connection
_REQUEST_ID_HEADERS = ("x-request-id", "x-oss-request-id", "x-amz-request-id", "x-bce-request-id")


def request_headers(**extra: str) -> dict[str, str]:
    """Headers of every download request: our User-Agent, the bytes as stored (no transfer compression)."""
    return {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **extra}


def validator(headers: Mapping[str, str]) -> str | None:
    """What ``If-Range`` may carry: a strong ETag, else Last-Modified (RFC 9110 §13.1.5)."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def total(status: int, headers: Mapping[str, str]) -> int | None:
    """The full length: the total in ``Content-Range`` of a 206/416, else a 200's ``Content-Length``."""
    content_range = headers.get("Content-Range")
    if content_range:
        value = content_range.rsplit("/", 1)[-1].strip()
        return int(value) if value.isdigit() else None
    length = headers.get("Content-Length", "")
    return int(length) if status == 200 and length.isdigit() else None


def changes(known: Sidecar | None, validator: str | None, total: int | None) -> str:
    """How an answer's version differs from the one staged ('' when it is the same)."""
    if known is None:
        return "no record of the staged version"
    found = []
    if validator and known.validator and validator != known.validator:
        found.append(f"validator {known.validator} -> {validator}")
    if total is not None and known.total is not None and total != known.total:
        found.append(f"total {known.total} -> {total} bytes")
    return ", ".join(found)


def request_id(headers: Mapping[str, str]) -> str | None:
    """The object store's request id, for the error a support ticket quotes."""
    return next((headers[h] for h in _REQUEST_ID_HEADERS if h in headers), None)
