"""The parts of one multipart upload to the archive's S3 store (``archive_s3.S3Store``): the staged file read once,
in order, each part verified against the one an earlier try left in the store or sent, the whole file's sha256
recomputed on the way. At most ``max_workers`` parts are in memory at once."""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from airflow.sdk import ObjectStoragePath

from artifact_harvest.core.errors import FatalProviderError
from artifact_harvest.core.s3_client import STORE, store_error
from artifact_harvest.core.transfer import DownloadedFile

log = logging.getLogger(__name__)


@dataclass
class Part:
    number: int
    offset: int
    size: int
    sha256: bytes
    md5: str | None = None
    etag: str | None = None


def checksum(part: Part, checksums: bool) -> dict[str, str]:
    """The part's ``ChecksumSHA256`` argument (none when the store refused SHA-256 checksums)."""
    return {"ChecksumSHA256": b64(part.sha256)} if checksums else {}


def composite_sha256(parts: list[Part]) -> str:
    """The object's composite ``ChecksumSHA256``: SHA-256 over the parts' SHA-256s, base64."""
    return b64(hashlib.sha256(b"".join(p.sha256 for p in parts)).digest())


def upload_parts(client: Any, file: DownloadedFile, target: ObjectStoragePath, upload_id: str, part_size: int,
                 listed: dict[int, dict], *, checksums: bool, max_workers: int) -> list[Part]:
    """Read the staged file once, in order: verify parts already in the store (``listed``), send the others.

    The whole file's sha256 runs in a thread of its own (in read order), each part's in its upload
    thread, so reading, hashing and sending overlap; a part's buffer is freed once sent and hashed.
    """
    whole = hashlib.sha256()
    parts: list[Part] = []
    pending: list[Future] = []
    slots = threading.BoundedSemaphore(max_workers)
    kept = 0
    with ThreadPoolExecutor(max_workers) as pool, ThreadPoolExecutor(1) as hasher, file.path.open("rb") as f:
        for number in range(1, max(1, -(-file.size // part_size)) + 1):
            slots.acquire()
            data = f.read(part_size)
            part = Part(number, (number - 1) * part_size, len(data), b"")
            parts.append(part)
            steps = [hasher.submit(whole.update, data)]
            if (there := listed.get(number)) and _same_part(there, part, data):
                part.etag, kept = there["ETag"], kept + 1
            else:
                steps.append(pool.submit(_send_part, client, target, upload_id, part, data, checksums))
            _release_after(steps, slots)
            pending.extend(steps)
            for done in [p for p in pending if p.done()]:  # fail early, not after reading the whole file
                pending.remove(done)
                done.result()
            del data
        for future in pending:
            future.result()
    if whole.hexdigest() != file.sha256 or sum(p.size for p in parts) != file.size:
        raise FatalProviderError(STORE, f"the staged file {file.path} changed: read sha256 {whole.hexdigest()},"
                                        f" downloaded sha256 {file.sha256}; nothing was archived")
    log.info("upload %s: %d parts, %d verified from an earlier try, %d sent", upload_id, len(parts), kept,
             len(parts) - kept)
    return parts


def _same_part(listed: dict, part: Part, data: bytes) -> bool:
    if listed.get("Size") != part.size:
        return False
    part.sha256 = hashlib.sha256(data).digest()
    if listed.get("ChecksumSHA256"):
        return listed["ChecksumSHA256"] == b64(part.sha256)
    return str(listed.get("ETag", "")).strip('"') == hashlib.md5(data).hexdigest()


def _send_part(client: Any, target: ObjectStoragePath, upload_id: str, part: Part, data: bytes,
               checksums: bool) -> None:
    part.sha256 = hashlib.sha256(data).digest()
    try:
        answer = client.upload_part(Bucket=target.bucket, Key=target.key, UploadId=upload_id,
                                    PartNumber=part.number, Body=data, **checksum(part, checksums))
    except Exception as exc:
        raise store_error(exc, f"uploading part {part.number} of {target}") from None
    part.etag = answer["ETag"]


def _release_after(futures: list[Future], slots: threading.BoundedSemaphore) -> None:
    """Release one slot once every future in ``futures`` is done."""
    remaining, lock = [len(futures)], threading.Lock()

    def one_done(_: Future) -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0] == 0:
                slots.release()

    for future in futures:
        future.add_done_callback(one_done)


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()
