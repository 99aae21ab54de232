"""Download and verify from an ``s3://`` archive root (moto's server mode on 127.0.0.1), through ObjectStoragePath."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

API = "/artifacts/api"


@pytest.fixture
def s3_archive(ui_archive, monkeypatch):
    """The session's archived artifacts copied to a bucket on a moto server; the root Variable points there."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing-secret", "region_name": "us-east-1"}
        s3 = boto3.client("s3", endpoint_url=endpoint, **creds)
        s3.create_bucket(Bucket="harvest")
        for path in ui_archive.glob("*/*/*"):
            s3.upload_file(str(path), "harvest", f"archive/{path.relative_to(ui_archive)}")
        conn = {"conn_type": "aws", "login": creds["aws_access_key_id"], "password": creds["aws_secret_access_key"],
                "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
        monkeypatch.setenv("AIRFLOW_CONN_ARCHIVE_S3", json.dumps(conn))
        monkeypatch.setenv("AIRFLOW_VAR_ARTIFACT_ARCHIVE_ROOT", "s3://harvest/archive")
        monkeypatch.setenv("AIRFLOW_VAR_ARTIFACT_ARCHIVE_CONN_ID", "archive_s3")
        yield s3
    finally:
        server.stop()


def test_download_and_verify_from_s3(viewer, archived, ui_archive, s3_archive):
    manifest_path = next(p for p in ui_archive.glob("flighthub2/*/manifest.json"))
    m = json.loads(manifest_path.read_text())
    local = Path(manifest_path.parent, m["filename"]).read_bytes()
    assert viewer.get(f"{API}/store").json()["reachable"] is True

    resp = viewer.get(f"{API}/artifacts/flighthub2/{m['artifact_key']}/download")
    assert resp.status_code == 200, resp.text
    assert resp.content == local and int(resp.headers["content-length"]) == m["size_bytes"]
    assert hashlib.sha256(resp.content).hexdigest() == m["sha256"]

    job = viewer.post(f"{API}/artifacts/flighthub2/{m['artifact_key']}/verify").json()
    deadline = time.monotonic() + 30
    while job["state"] == "running":
        assert time.monotonic() < deadline, job
        job = viewer.get(f"{API}/verify/{job['job_id']}").json()
    assert job["ok"] is True, job

    # the data object gone, the manifest still there: the page says so instead of failing the download
    s3_archive.delete_object(Bucket="harvest", Key=f"archive/flighthub2/{m['artifact_key']}/{m['filename']}")
    detail = viewer.get(f"{API}/artifacts/flighthub2/{m['artifact_key']}").json()
    assert detail["data_file"]["present"] is False and m["filename"] in detail["data_file"]["error"]
