"""The emulator's blob versions over real HTTP: ETag/Last-Modified, If-Range as RFC 9110 says, the "rebuild"
fault and the per-connection bandwidth cap."""

from __future__ import annotations

import hashlib
import time

import pytest
import requests

MIB = 1 << 20


@pytest.fixture
def blob(emu) -> dict:
    return emu.control.create_blob(2 * MIB + 77, "artifact.bin")


def _get(blob: dict, **headers: str) -> requests.Response:
    return requests.get(blob["url"], headers=headers, timeout=10)


def test_every_artifact_has_a_strong_etag_and_last_modified(blob):
    head = requests.head(blob["url"], timeout=10).headers
    assert head["ETag"].startswith('"') and head["Last-Modified"].endswith("GMT")
    assert _get(blob, Range="bytes=10-19").headers["ETag"] == head["ETag"]


@pytest.mark.parametrize("validator, status", [
    ("etag", 206), ("last_modified", 206), ('"other"', 200), ("weak", 200),
    ("Mon, 01 Jan 2001 00:00:00 GMT", 200),
], ids=["same-etag", "same-date", "other-etag", "weak-etag-never-matches", "other-date"])
def test_if_range_applies_the_range_only_to_the_same_version(blob, validator, status):
    head = requests.head(blob["url"], timeout=10).headers
    value = {"etag": head["ETag"], "last_modified": head["Last-Modified"], "weak": "W/" + head["ETag"]}.get(
        validator, validator
    )

    response = _get(blob, Range="bytes=100-", **{"If-Range": value})

    assert response.status_code == status
    expected = blob["size"] - 100 if status == 206 else blob["size"]
    assert len(response.content) == expected
    if status == 200:
        assert "Content-Range" not in response.headers
        assert hashlib.sha256(response.content).hexdigest() == blob["sha256"]


def test_if_range_without_range_is_ignored(blob):
    response = _get(blob, **{"If-Range": '"other"'})
    assert response.status_code == 200 and len(response.content) == blob["size"]


def test_rebuild_after_the_nth_body_serves_a_new_version_at_the_same_url(emu, blob):
    emu.control.add_fault(f"/blobs/{blob['blob_id']}/", kind="rebuild", times=2)
    first, second, third = (_get(blob) for _ in range(3))

    assert first.content == second.content and first.headers["ETag"] == second.headers["ETag"]
    assert hashlib.sha256(first.content).hexdigest() == blob["sha256"]
    now = emu.control.blob(blob["blob_id"])
    assert third.headers["ETag"] == now["etag"] != first.headers["ETag"]
    assert len(third.content) == blob["size"] and hashlib.sha256(third.content).hexdigest() == now["sha256"]
    assert now["sha256"] != blob["sha256"]
    stale = _get(blob, Range="bytes=0-", **{"If-Range": first.headers["ETag"]})
    assert stale.status_code == 200 and stale.content == third.content


def test_per_connection_rate_caps_each_body(emu, blob):
    rate = 4 * MIB
    emu.control.configure(per_connection_rate=rate)

    started = time.monotonic()
    body = _get(blob).content
    elapsed = time.monotonic() - started

    assert len(body) == blob["size"]
    assert elapsed >= 0.9 * blob["size"] / rate  # a lower bound: contention only makes it slower
    emu.control.configure(per_connection_rate=0)
    assert emu.control.config()["per_connection_rate"] == 0
