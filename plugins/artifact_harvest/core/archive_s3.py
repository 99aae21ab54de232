"""The archive's S3 store (AWS S3 and S3-compatible stores through an Airflow ``aws`` connection).

Why each step:

- **Visible only when complete.** Data always goes up as a multipart upload, which stays invisible until
  ``CompleteMultipartUpload``; there is no temporary object to rename (S3 has no rename).
- **Create-only.** Completion and the manifest PUT send ``If-None-Match: *``: of two archivers of one key
  exactly one creates the object; the other gets 412 and verifies what is there. A store that answers 501 to
  the condition gets the same request without it, after a HEAD (a race window remains; docs/one-writer.md).
  The key's lease (``core.lease``) is taken by the same conditional PUT, renewed by a plain PUT of its own
  object, found by one ListObjectsV2.
- **Constant memory.** Parts are read from the staging file one at a time, at most ``max_workers`` in flight
  (``core.archive_s3_parts``); the client and its errors are ``core.s3_client``.
- **Resumable.** The upload id is kept in the task state store; a retry lists the parts already in the store,
  verifies each against the staged bytes (size, and ``ChecksumSHA256`` or the part's md5 ETag) and sends only
  the rest. A fatal error aborts the upload so no orphaned parts remain; a transient one keeps it for the retry.
  An upload that vanishes meanwhile (``NoSuchUpload``) is started again, bounded, then left to the task's retry.
- **Verified.** The staged file's sha256 is recomputed from the bytes read for upload; afterwards ``HeadObject``
  must give the size and the composite ``ChecksumSHA256`` (SHA-256 over the parts' SHA-256s) we computed.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from airflow.sdk import ObjectStoragePath

from artifact_harvest.core.archive_s3_parts import Part, checksum, composite_sha256, upload_parts
from artifact_harvest.core.config import setting
from artifact_harvest.core.errors import FatalProviderError, TransientProviderError
from artifact_harvest.core.s3_client import STORE, UNSUPPORTED, error_code, s3_client, store_error
from artifact_harvest.core.transfer import DownloadedFile

log = logging.getLogger(__name__)

MiB = 1 << 20
MAX_PARTS = 10_000
#: new uploads one try starts after its upload vanished (NoSuchUpload) before the error goes to the task's retry
MAX_RESTARTS = 2


class S3Store:
    """An ``s3://`` root. ``state`` is the task state store (``get``/``set``/``delete``), or None."""

    def __init__(self, root: ObjectStoragePath, state: Any = None, *, part_size: int | None = None,
                 max_workers: int | None = None) -> None:
        self.client = s3_client(root.conn_id)
        self.state = state
        self.part_size = part_size or int(setting("archive_part_size_mib", 8.0) * MiB)
        self.max_workers = max_workers or setting("archive_upload_workers", 8, int)
        self.checksums = True  # SHA-256 per part (False: the store refused ChecksumAlgorithm)

    # -- small objects -----------------------------------------------------------------------------------
    def read_text(self, path: ObjectStoragePath) -> str | None:
        try:
            body = self.client.get_object(Bucket=path.bucket, Key=path.key)["Body"]
            return body.read().decode()
        except Exception as exc:
            if error_code(exc) == "NoSuchKey":
                return None
            raise store_error(exc, f"reading {path}") from None

    def put_text(self, path: ObjectStoragePath, text: str) -> bool:
        """Create ``path``; False when it already exists."""
        args = {"Bucket": path.bucket, "Key": path.key, "Body": text.encode(), "ContentType": "application/json"}
        return self._create(lambda **cond: self.client.put_object(**args, **cond), path)

    def replace_text(self, path: ObjectStoragePath, text: str) -> None:
        """Overwrite ``path`` (a lease renewal: only its holder writes it)."""
        try:
            self.client.put_object(Bucket=path.bucket, Key=path.key, Body=text.encode(),
                                   ContentType="application/json")
        except Exception as exc:
            raise store_error(exc, f"writing {path}") from None

    def list_names(self, folder: ObjectStoragePath, prefix: str) -> list[str]:
        """Names directly in ``folder`` starting with ``prefix`` (one ListObjectsV2 page: a handful of leases)."""
        base = folder.key.rstrip("/") + "/"
        try:
            page = self.client.list_objects_v2(Bucket=folder.bucket, Prefix=base + prefix)
        except Exception as exc:
            raise store_error(exc, f"listing {folder}") from None
        return [o["Key"][len(base):] for o in page.get("Contents", [])]

    def delete(self, path: ObjectStoragePath) -> None:
        try:
            self.client.delete_object(Bucket=path.bucket, Key=path.key)
        except Exception as exc:
            raise store_error(exc, f"deleting {path}") from None

    def stat(self, target: ObjectStoragePath) -> tuple[int, str] | None:
        """``(size, sha256)`` of the object (streamed back in full), or None when there is none."""
        if self._head(target) is None:
            return None
        try:
            body = self.client.get_object(Bucket=target.bucket, Key=target.key)["Body"]
            digest, size = hashlib.sha256(), 0
            for chunk in body.iter_chunks(4 * MiB):
                digest.update(chunk)
                size += len(chunk)
        except Exception as exc:
            raise store_error(exc, f"reading {target}") from None
        return size, digest.hexdigest()

    def _head(self, target: ObjectStoragePath, **kwargs: Any) -> dict | None:
        try:
            return self.client.head_object(Bucket=target.bucket, Key=target.key, **kwargs)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise store_error(exc, f"looking up {target}") from None

    def _create(self, request: Any, target: ObjectStoragePath) -> bool:
        """Send ``request`` with ``If-None-Match: *``; False on 412 (exists). 501: HEAD, then unconditionally."""
        try:
            request(IfNoneMatch="*")
            return True
        except Exception as exc:
            code = error_code(exc)
            if code in ("PreconditionFailed", "412"):
                return False
            if code not in UNSUPPORTED:
                raise store_error(exc, f"writing {target}") from None
        log.warning("the store does not support If-None-Match on %s; creating after a HEAD (racy)", target)
        if self._head(target) is not None:
            return False
        try:
            request()
        except Exception as exc:
            raise store_error(exc, f"writing {target}") from None
        return True

    # -- the data object ---------------------------------------------------------------------------------
    def put_data(self, file: DownloadedFile, target: ObjectStoragePath) -> bool:
        """Upload the staged file to ``target`` unless it exists (False); verified in the store when True.

        An upload that vanishes mid-transfer (``NoSuchUpload``: a lifecycle rule, another process) is started
        again, at most ``MAX_RESTARTS`` times per try; past that the error is transient, so the task retries.
        """
        if self._head(target) is not None:
            return False
        state_key = f"archive_upload/{target.bucket}/{target.key}"
        upload_id, part_size, listed = self._resume_or_create(file, target, state_key)
        restarts = 0
        while True:
            try:
                created = self._upload(file, target, upload_id, part_size, listed)
                break
            except FatalProviderError as exc:
                if exc.code != "NoSuchUpload":
                    self._give_up(target, upload_id, state_key)
                    raise
                if self._head(target) is not None:  # completed after all (a lost answer), or by another writer
                    self._forget(state_key)
                    return False
                restarts += 1
                if restarts > MAX_RESTARTS:
                    self._forget(state_key)
                    raise TransientProviderError(
                        STORE, f"{exc.provider_message}; {MAX_RESTARTS} new uploads of {target} vanished too",
                        code="NoSuchUpload", http_status=exc.http_status, request_id=exc.request_id,
                        hint="check the bucket's lifecycle rules (AbortIncompleteMultipartUpload) and who else "
                             "aborts uploads under this prefix; the task's retry starts a new upload") from None
                log.warning("upload %s of %s vanished (%s); starting a new one (%d of at most %d)", upload_id,
                            target, exc.provider_message, restarts, MAX_RESTARTS)
                self._abort(target, upload_id)  # our own earlier upload: gone already, unless the store lied
                upload_id, part_size, listed = *self._new_upload(file, target, state_key), {}
            except TransientProviderError as exc:
                log.warning("upload %s of %s kept for the retry to resume: %s", upload_id, target, exc)
                raise
            except Exception:  # fatal: no orphaned parts. A kill or timeout (BaseException) keeps it for the retry
                self._give_up(target, upload_id, state_key)
                raise
        self._forget(state_key)
        return created

    def _upload(self, file: DownloadedFile, target: ObjectStoragePath, upload_id: str, part_size: int,
                listed: dict[int, dict]) -> bool:
        """Send the missing parts and complete (create-only); False when another archiver created it first."""
        parts = upload_parts(self.client, file, target, upload_id, part_size, listed, checksums=self.checksums,
                             max_workers=self.max_workers)
        listing = [{"PartNumber": p.number, "ETag": p.etag, **checksum(p, self.checksums)} for p in parts]
        completed: dict = {}
        created = self._create(lambda **cond: completed.update(self.client.complete_multipart_upload(
            Bucket=target.bucket, Key=target.key, UploadId=upload_id, MultipartUpload={"Parts": listing},
            **cond)), target)
        if created:
            created = self._verify(file, target, parts, completed.get("ETag"))
        else:
            self._abort(target, upload_id)
        if not created:
            log.info("%s was created by another archiver meanwhile; this upload is discarded", target)
        return created

    def _give_up(self, target: ObjectStoragePath, upload_id: str, state_key: str) -> None:
        self._abort(target, upload_id)
        self._forget(state_key)

    def _resume_or_create(self, file: DownloadedFile, target: ObjectStoragePath,
                          state_key: str) -> tuple[str, int, dict[int, dict]]:
        """The earlier try's upload of these same bytes with its listed parts, else a new upload."""
        saved = self.state.get(state_key) if self.state is not None else None
        if saved and (saved.get("size"), saved.get("sha256")) == (file.size, file.sha256):
            try:
                listed = self._listed_parts(target, saved["upload_id"])
                self.checksums = bool(saved.get("checksums", True))
                log.info("resuming multipart upload %s of %s: %d parts in the store", saved["upload_id"], target,
                         len(listed))
                return saved["upload_id"], int(saved["part_size"]), listed
            except FatalProviderError as exc:
                if exc.code != "NoSuchUpload":
                    raise
                log.info("upload %s is gone (aborted, or a lifecycle rule); starting again", saved["upload_id"])
        elif saved:
            log.info("the staged file is not the one upload %s was for; aborting it", saved["upload_id"])
            self._abort(target, saved["upload_id"])
        return (*self._new_upload(file, target, state_key), {})

    def _new_upload(self, file: DownloadedFile, target: ObjectStoragePath, state_key: str) -> tuple[str, int]:
        """A new multipart upload, its id kept in the task state store at once."""
        part_size = max(self.part_size, -(-file.size // MAX_PARTS))
        upload_id = self._create_upload(target)
        if self.state is not None:
            from airflow.sdk.execution_time.context import NEVER_EXPIRE

            value = {"upload_id": upload_id, "size": file.size, "sha256": file.sha256, "part_size": part_size,
                     "checksums": self.checksums}
            self.state.set(state_key, value, retention=NEVER_EXPIRE)
        log.info("multipart upload %s of %s (%d bytes, %d MiB parts)", upload_id, target, file.size, part_size // MiB)
        return upload_id, part_size

    def _create_upload(self, target: ObjectStoragePath) -> str:
        """With SHA-256 part checksums; without, on a store that refuses them (then parts are checked by md5)."""
        doing = f"starting the upload of {target}"
        try:
            return self.client.create_multipart_upload(
                Bucket=target.bucket, Key=target.key, ChecksumAlgorithm="SHA256")["UploadId"]
        except Exception as exc:
            if error_code(exc) not in UNSUPPORTED:
                raise store_error(exc, doing) from None
        log.warning("the store refuses ChecksumAlgorithm=SHA256: parts are checked by their md5 ETag, the object "
                    "by size")
        self.checksums = False
        try:
            return self.client.create_multipart_upload(Bucket=target.bucket, Key=target.key)["UploadId"]
        except Exception as exc:
            raise store_error(exc, doing) from None

    def _listed_parts(self, target: ObjectStoragePath, upload_id: str) -> dict[int, dict]:
        parts: dict[int, dict] = {}
        marker = 0
        try:
            while True:
                page = self.client.list_parts(Bucket=target.bucket, Key=target.key, UploadId=upload_id,
                                              PartNumberMarker=marker)
                parts.update({p["PartNumber"]: p for p in page.get("Parts", [])})
                if not page.get("IsTruncated"):
                    return parts
                marker = page["NextPartNumberMarker"]
        except Exception as exc:
            raise store_error(exc, f"listing the parts of upload {upload_id}") from None

    def _verify(self, file: DownloadedFile, target: ObjectStoragePath, parts: list[Part], etag: str | None) -> bool:
        """Size, and the composite ChecksumSHA256 when the store returns one; False when the object there is
        not ours (a store whose conditional create is missing or not atomic let another writer replace it)."""
        head = self._head(target, ChecksumMode="ENABLED") or {}
        if etag and head.get("ETag") != etag:
            return False
        expected = composite_sha256(parts)
        got = str(head.get("ChecksumSHA256") or "").split("-")[0]
        if head.get("ContentLength") == file.size and got in ("", expected):
            how = "size and ChecksumSHA256" if got else "size only (the store returned no ChecksumSHA256)"
            log.info("verified %s in the store by %s", target, how)
            return True
        self.client.delete_object(Bucket=target.bucket, Key=target.key)  # ours (same ETag), and wrong
        raise FatalProviderError(STORE, f"{target} in the store has {head.get('ContentLength')} bytes and "
                                        f"ChecksumSHA256 {got or 'none'}, expected {file.size} and {expected}; "
                                        "deleted it, the staged file is kept")

    def _abort(self, target: ObjectStoragePath, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=target.bucket, Key=target.key, UploadId=upload_id)
            log.info("aborted multipart upload %s of %s", upload_id, target)
        except Exception as exc:
            if error_code(exc) != "NoSuchUpload":
                log.warning("could not abort upload %s of %s: %s", upload_id, target, store_error(exc, "abort"))

    def _forget(self, state_key: str) -> None:
        if self.state is not None:
            self.state.delete(state_key)

