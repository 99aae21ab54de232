"""HTTP serving shared by every provider: base URL, object-storage errors, and blob streaming with faults.

Providers import from here (not from ``app``, which imports them).
"""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from .blobs import BLOCK, Blob
from .faults import BLOB_KINDS
from .state import STATE, EmulatorState

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def base_url(request: web.Request) -> str:
    """scheme://host:port the client used, for URLs the emulator hands out."""
    return f"{request.scheme}://{request.host}"


def storage_error(status: int, code: str, message: str) -> web.Response:
    """An object-storage style XML error body."""
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return web.Response(status=status, text=body, content_type="application/xml")


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, end_exclusive)``, None to ignore the header (invalid or multi-range, as RFC 9110 allows),
    or ``(-1, -1)`` when unsatisfiable."""
    match = _RANGE.fullmatch(header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        return (max(size - suffix, 0), size) if suffix > 0 and size > 0 else (-1, -1)
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return (-1, -1)
    return start, min(int(last) + 1, size) if last else size


def if_range_holds(header: str | None, blob: Blob) -> bool:
    """RFC 9110 §13.1.5: the Range applies only if the validator still names this version. An entity tag
    compares strongly (a weak one never matches); a date must equal Last-Modified exactly."""
    if header is None:
        return True
    header = header.strip()
    if header.startswith(("W/", '"')):
        return header == blob.etag
    return header == blob.last_modified


async def serve_blob(request: web.Request, state: EmulatorState, blob: Blob) -> web.StreamResponse:
    """Stream ``blob`` (GET or HEAD) with Range and If-Range support, applying the matching blob faults.

    Config ``per_connection_rate`` (bytes/s, 0 = off) caps every body like a CDN's per-flow limit.
    """
    kinds = tuple(k for k in BLOB_KINDS if k != "rebuild") if request.method != "HEAD" else ("expire", "ignore_range")
    faults = {kind: state.faults.take(request.path, request.method, kind, headers=request.headers) for kind in kinds}
    if faults.get("expire"):
        return storage_error(403, "AccessDenied", "Request has expired")
    start, end = 0, blob.size
    header = request.headers.get("Range")
    if header and (faults.get("ignore_range") or not if_range_holds(request.headers.get("If-Range"), blob)):
        header = None
    parsed = _parse_range(header, blob.size) if header else None
    if parsed == (-1, -1):
        return web.Response(status=416, headers={"Content-Range": f"bytes */{blob.size}", "Accept-Ranges": "bytes"})
    if parsed:
        start, end = parsed
    response = web.StreamResponse(status=206 if parsed else 200)
    response.content_type = "application/octet-stream"
    response.content_length = end - start
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["ETag"] = blob.etag
    response.headers["Last-Modified"] = blob.last_modified
    if parsed:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{blob.size}"
    await response.prepare(request)
    if request.method != "HEAD":
        cap = float(state.config.get("per_connection_rate") or 0)
        if cap and not faults.get("slow"):
            faults["slow"] = {"rate": cap}
        try:
            if await _write_body(request, response, blob, start, end, faults):
                await response.write_eof()
        except ConnectionError:  # the client hung up mid-body (a stream handed over to ranges): normal
            pass
        finally:
            # "rebuild" with times=N: the N-th body served (whole or cut) is the last of this version
            rebuild = state.faults.take(request.path, request.method, "rebuild", headers=request.headers)
            if rebuild is not None and rebuild["times"] == 0:
                blob.rebuild()
    return response


async def _write_body(request: web.Request, response: web.StreamResponse, blob: Blob, start: int, end: int,
                      faults: dict[str, dict | None]) -> bool:
    """Write ``[start, end)``; False if a drop fault cut the connection."""
    drop, slow, corrupt = faults.get("drop"), faults.get("slow"), faults.get("corrupt")
    drop_at = (drop.get("after_bytes", (end - start) // 2) if drop else None)
    flip_at = None
    if corrupt:
        flip_at = corrupt.get("offset", blob.size // 2)
        flip_at = flip_at if start <= flip_at < end else start
    rate = float(slow["rate"]) if slow else None
    piece = min(BLOCK, max(1, int(rate / 20))) if rate else BLOCK
    loop = asyncio.get_running_loop()
    began, sent = loop.time(), 0
    for data in blob.iter_range(start, end, piece):
        if flip_at is not None and start + sent <= flip_at < start + sent + len(data):
            data = bytearray(data)
            data[flip_at - start - sent] ^= 0xFF
        if drop_at is not None and sent + len(data) > drop_at:
            await response.write(data[: drop_at - sent])
            # close() flushes what was written, then EOF: the client sees a short body, not a reset header.
            request.transport.close()
            return False
        await response.write(data)
        sent += len(data)
        if rate:
            await asyncio.sleep(max(0.0, began + sent / rate - loop.time()))
    return True


async def signed_blob(request: web.Request) -> web.StreamResponse:
    """``GET|HEAD /blobs/{blob_id}/{filename}?Expires=&Signature=``: the object-storage download route."""
    state = request.app[STATE]
    blob_id, filename = request.match_info["blob_id"], request.match_info["filename"]
    problem = state.check_signature(blob_id, filename, request.query.get("Expires"), request.query.get("Signature"))
    if problem:
        return storage_error(403, "AccessDenied", problem)
    blob = state.blobs.get(blob_id)
    if blob is None or blob.filename != filename:
        return storage_error(404, "NoSuchKey", "The specified key does not exist.")
    return await serve_blob(request, state, blob)
