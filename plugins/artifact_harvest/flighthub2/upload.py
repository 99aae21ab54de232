"""Photo upload for open modeling: straight to the bucket the upload credential names (S3-compatible API).

The credential's ``store_path`` is a key template ending in ``{fileName}``; the segment before it is the
resource UUID the upload callback needs (the API returns it nowhere else). Uploads run in parallel, keep
each ETag (quotes stripped), skip files an earlier try already uploaded, and renew the STS keys before
``expire_time`` (a renewed credential's keys are used; the first credential's bucket and path are kept).

Photos may come from object storage: ``s3://bucket/prefix`` through an Airflow ``aws`` connection, named in
the URI (``s3://conn_id@bucket/prefix``) or by the Variable ``flighthub2_photos_conn_id``. Each photo is
streamed from its source into the vendor bucket (a managed upload: multipart above ``MULTIPART_THRESHOLD``,
at most ``PART_SIZE`` x ``PART_CONCURRENCY`` bytes in memory per photo), never read whole into memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from artifact_harvest.core.errors import InvalidParameterError, MalformedResponseError, ProviderError
from artifact_harvest.core.retry import RetryRule
from artifact_harvest.flighthub2.status import PROVIDER

log = logging.getLogger(__name__)

MiB = 1 << 20
MULTIPART_THRESHOLD = 16 * MiB
PART_SIZE = 8 * MiB
PART_CONCURRENCY = 2


class Readable(Protocol):
    name: str

    def open(self, mode: str = "rb") -> Any: ...


def resource_uuid_from_store_path(store_path: str) -> str:
    """``fh/organizations/<org>/open_reconstruction/tmp/<resource_uuid>/{fileName}`` → ``<resource_uuid>``."""
    parts = store_path.split("/")
    if "{fileName}" not in parts or parts.index("{fileName}") == 0:
        raise MalformedResponseError(PROVIDER, "store_path", "has no '<resource_uuid>/{fileName}' segment")
    return parts[parts.index("{fileName}") - 1]


def expiry_epoch(expire_time: Any) -> float:
    """``expire_time`` as Unix seconds (the docs do not say seconds or milliseconds: accept both)."""
    value = float(expire_time or 0)
    return value / 1000 if value > 1e11 else value


@dataclass(frozen=True)
class UploadTarget:
    """The non-secret half of an upload credential: where the photos go. Safe for the task state store."""

    resource_uuid: str
    callback_param: str
    bucket: str
    store_path: str
    end_point: str
    region: str

    @classmethod
    def from_credential(cls, credential: Mapping[str, Any]) -> UploadTarget:
        return cls(
            resource_uuid=resource_uuid_from_store_path(credential["store_path"]),
            callback_param=str(credential.get("callback_param") or ""),
            bucket=credential["cloud_bucket_name"],
            store_path=credential["store_path"],
            end_point=credential["end_point"],
            region=credential.get("region") or "us-east-1",
        )

    def key(self, name: str) -> str:
        return self.store_path.replace("{fileName}", name)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def photos_folder(photos: str) -> Any:
    """A local ``Path``, or an ``ObjectStoragePath`` with the connection from the URI or the Variable."""
    if "://" not in photos:
        return Path(photos)
    from airflow.sdk import ObjectStoragePath, Variable

    folder = ObjectStoragePath(photos)
    if folder.protocol in ("s3", "s3a") and not folder.conn_id:
        conn_id = Variable.get("flighthub2_photos_conn_id", default=None)
        folder = ObjectStoragePath(photos, conn_id=conn_id) if conn_id else folder
    if folder.conn_id:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            BaseHook.get_connection(folder.conn_id)
        except AirflowNotFoundException:
            raise InvalidParameterError(PROVIDER, "photos", f"connection {folder.conn_id!r} is not defined") from None
    return folder


def list_photos(photos: str) -> list[Readable]:
    """The files directly inside a local folder or an object-storage prefix (``s3://…``, ``file://…``)."""
    folder = photos_folder(photos)
    try:
        is_dir = folder.is_dir()
    except Exception as exc:  # the store's own answer (NoSuchBucket, AccessDenied...), never the keys
        raise InvalidParameterError(PROVIDER, "photos", f"{photos!r} cannot be read: {type(exc).__name__}: {exc}")
    if not is_dir:
        raise InvalidParameterError(PROVIDER, "photos", f"{photos!r} is not a folder")
    files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")), key=lambda p: p.name)
    if not files:
        raise InvalidParameterError(PROVIDER, "photos", f"{photos!r} holds no files")
    return files


class PhotoUploader:
    """Uploads files to ``target`` with the STS keys of ``credential``; ``renew`` fetches fresh keys.

    :param renew: returns a new upload credential (``FlightHub2Hook.obtain_upload_credential``).
    :param max_workers: parallel uploads.
    :param renew_margin: seconds before ``expire_time`` at which the keys are renewed.
    """

    def __init__(
        self,
        target: UploadTarget,
        credential: Mapping[str, Any],
        renew: Callable[[], Mapping[str, Any]],
        *,
        max_workers: int = 8,
        renew_margin: float = 120.0,
    ) -> None:
        self.target = target
        self.renew = renew
        self.max_workers = max_workers
        self.renew_margin = renew_margin
        self._credential = credential
        self._client: Any = None
        self._lock = threading.Lock()

    def _s3(self) -> Any:
        """A boto3 client for keys that are still valid for ``renew_margin`` seconds."""
        with self._lock:
            if expiry_epoch(self._credential.get("expire_time")) - self.renew_margin < time.time():
                log.info("upload credential expires soon; renewing the STS keys")
                self._credential, self._client = self.renew(), None
            if self._client is None:
                import boto3
                from botocore.config import Config

                self._client = boto3.client(
                    "s3",
                    endpoint_url=self.target.end_point,
                    region_name=self.target.region,
                    aws_access_key_id=self._credential["access_key_id"],
                    aws_secret_access_key=self._credential["secret_access_key"],
                    aws_session_token=self._credential.get("session_token"),
                    config=Config(
                        signature_version="s3v4",
                        s3={"addressing_style": "path"},
                        # S3-compatible gateways often reject aws-chunked bodies with trailing checksums
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required",
                        retries={"max_attempts": 5, "mode": "standard"},
                    ),
                )
            return self._client

    def _put(self, photo: Readable) -> str:
        """Stream ``photo`` into the bucket: one PUT, or a multipart upload when it is big (then a HEAD for
        the ETag); the body is read from the source in blocks, never whole. A bare HTTP 429 is retried with the
        shared rule (botocore's standard mode retries 503 SlowDown, not a bare 429, which S3-compatible gateways
        do send); writing the same bytes to the same key again is idempotent."""
        from botocore.exceptions import ClientError

        rule = RetryRule()
        for attempt in range(1, rule.attempts + 1):
            try:
                return self._put_once(photo)
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status != 429 or attempt == rule.attempts:
                    raise
                time.sleep(rule.delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _put_once(self, photo: Readable) -> str:
        client, key = self._s3(), self.target.key(photo.name)
        with photo.open("rb") as source:
            size = source.seek(0, 2)
            source.seek(0)
            if size < MULTIPART_THRESHOLD:
                return str(client.put_object(Bucket=self.target.bucket, Key=key, Body=source)["ETag"]).strip('"')
            from boto3.s3.transfer import TransferConfig

            config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=PART_SIZE,
                                    max_concurrency=PART_CONCURRENCY)
            client.upload_fileobj(source, self.target.bucket, key, Config=config)
        return str(client.head_object(Bucket=self.target.bucket, Key=key)["ETag"]).strip('"')

    def upload(
        self, photos: Iterable[Readable], done: Mapping[str, str], on_uploaded: Callable[[str, str], None]
    ) -> dict[str, str]:
        """Upload every photo not in ``done`` ({name: etag}); ``on_uploaded`` is called in this thread.

        A failed file does not stop the others: every success is reported first, so a retry sends only
        what is missing.
        """
        etags = dict(done)
        todo = [p for p in photos if p.name not in etags]
        log.info("uploading %d photos (%d already uploaded by an earlier try)", len(todo), len(etags))
        failures: list[tuple[str, BaseException]] = []
        with ThreadPoolExecutor(self.max_workers) as pool:
            futures = {pool.submit(self._put, photo): photo.name for photo in todo}
            for future in as_completed(futures):
                name = futures[future]
                if (error := future.exception()) is not None:
                    failures.append((name, error))
                    continue
                etags[name] = future.result()
                on_uploaded(name, etags[name])
        if failures:
            name, error = failures[0]
            raise ProviderError(
                PROVIDER, f"{len(failures)} of {len(todo)} photo uploads failed; first: {name}: {error}"
            ) from error
        return etags
