"""FlightHub 2 photo upload from and to real S3 APIs (moto's server, SigV4): photos read from s3://bucket/prefix
through an aws connection (in the URI or by Variable) and streamed into the vendor bucket, multipart for big ones;
the emulator's upload credential points at moto and its callback checks the ETags moto gives."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from harvest_emulator.credentials import ARCHIVE_S3_KEY_ID, ARCHIVE_S3_SECRET
from harvest_emulator.flighthub2 import UPLOAD_BUCKET

from artifact_harvest.core.errors import InvalidParameterError
from artifact_harvest.flighthub2.hook import FlightHub2Hook
from artifact_harvest.flighthub2.operators import FlightHub2UploadPhotosOperator
from artifact_harvest.flighthub2.upload import MULTIPART_THRESHOLD
from tests.support import StateStore, uploaded_photos

PHOTOS = Path(__file__).resolve().parents[3] / "include" / "sample_data" / "flighthub2_photos"
SOURCE = "drone-photos"
BIG = "DJI_0099.jpg"


@pytest.fixture
def photos_in_s3(object_store, emu, monkeypatch) -> dict[str, bytes]:
    """The sample photos plus one big one under s3://drone-photos/flight-1/, the connection, moto as the
    vendor's upload store."""
    client = object_store.client()
    for bucket in (SOURCE, UPLOAD_BUCKET):
        object_store.create_bucket(bucket)
        object_store.empty_bucket(bucket)
    photos = {p.name: p.read_bytes() for p in sorted(PHOTOS.iterdir())}
    photos[BIG] = hashlib.sha256(b"big").digest() * (MULTIPART_THRESHOLD // 32 + 40)  # 2 full parts + 1280 bytes
    for name, data in photos.items():
        client.put_object(Bucket=SOURCE, Key=f"flight-1/{name}", Body=data)
    monkeypatch.setenv("AIRFLOW_CONN_PHOTOS_S3", json.dumps({
        "conn_type": "aws", "login": ARCHIVE_S3_KEY_ID, "password": ARCHIVE_S3_SECRET,
        "extra": {"endpoint_url": object_store.url, "region_name": "us-east-1"}}))
    emu.control.configure(upload_endpoint=object_store.url)
    return photos


@pytest.mark.parametrize("how", ["uri", "variable"])
def test_photos_from_s3_streamed_into_the_vendor_bucket(photos_in_s3, object_store, monkeypatch, how):
    if how == "variable":
        monkeypatch.setenv("AIRFLOW_VAR_FLIGHTHUB2_PHOTOS_CONN_ID", "photos_s3")
    photos = f"s3://photos_s3@{SOURCE}/flight-1" if how == "uri" else f"s3://{SOURCE}/flight-1"
    store = StateStore()

    resource_uuid = FlightHub2UploadPhotosOperator(task_id="u", photos=photos).execute({"task_state_store": store})

    objects = uploaded_photos(object_store, resource_uuid)
    assert {name: o["body"] for name, o in objects.items()} == photos_in_s3
    assert objects[BIG]["etag"].endswith("-3"), "the big photo went up in 3 parts"
    assert all("-" not in o["etag"] for n, o in objects.items() if n != BIG)
    assert store.values["flighthub2_upload"]["etags"] == {n: o["etag"] for n, o in objects.items()}
    assert FlightHub2Hook().resource(resource_uuid)["file_names"] == sorted(photos_in_s3)
    assert ARCHIVE_S3_SECRET not in json.dumps(store.values)


def test_unknown_photos_connection_is_named(photos_in_s3):
    with pytest.raises(InvalidParameterError, match="'nope_conn' is not defined"):
        FlightHub2UploadPhotosOperator(task_id="u", photos=f"s3://nope_conn@{SOURCE}/flight-1").execute(
            {"task_state_store": StateStore()})


def test_missing_photos_bucket_is_a_clear_error(photos_in_s3):
    with pytest.raises(InvalidParameterError, match="photos") as info:
        FlightHub2UploadPhotosOperator(task_id="u", photos="s3://photos_s3@no-such-photos/x").execute(
            {"task_state_store": StateStore()})
    assert ARCHIVE_S3_SECRET not in str(info.value)
