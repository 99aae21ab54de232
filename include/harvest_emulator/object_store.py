"""A real S3 API on loopback for tests, the demo and the benchmarks: moto's server mode (SigV4 over HTTP).

The provider emulator keeps its minimal S3 for the demo's photo upload; everything that must behave like a
real store (multipart, ETags, checksums, conditional writes) talks to this server.
"""

from __future__ import annotations

from typing import Any

from .credentials import ARCHIVE_S3_KEY_ID, ARCHIVE_S3_SECRET

ARCHIVE_BUCKET = "harvest-archive"


class ObjectStore:
    """``ThreadedMotoServer`` on 127.0.0.1 (a free port unless one is given), with a client for setting it up."""

    def __init__(self, port: int = 0) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)

    def start(self) -> ObjectStore:
        import logging

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request in the demo's output
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def client(self, **kwargs: Any) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id=ARCHIVE_S3_KEY_ID,
            aws_secret_access_key=ARCHIVE_S3_SECRET, config=Config(signature_version="s3v4"), **kwargs,
        )

    def create_bucket(self, name: str) -> str:
        client = self.client()
        if name not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=name)
        return name

    def empty_bucket(self, name: str) -> None:
        """Delete every object and abort every multipart upload in ``name``."""
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=obj["Key"])
        for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
            client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
