"""The emulator's shared core over real HTTP: signed blobs, Range, every fault kind, request log, job clock."""

from __future__ import annotations

import hashlib
import http.client
import time
from urllib.parse import urlsplit

import pytest
import requests

from harvest_emulator.blobs import BLOCK, BlobStore
from harvest_emulator.jobs import Job

MIB = 1 << 20


@pytest.fixture
def blob(emu) -> dict:
    """A 3.5 MiB blob: spans several generated blocks, so offsets matter."""
    return emu.control.create_blob(3 * MIB + MIB // 2, "artifact.bin", seed=42)


def _get(url: str, **kwargs) -> requests.Response:
    return requests.get(url, timeout=10, **kwargs)


def test_full_get_matches_advertised_size_and_digests(blob):
    response = _get(blob["url"])
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(blob["size"])
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"]
    assert len(response.content) == blob["size"]
    assert hashlib.md5(response.content).hexdigest() == blob["md5"]
    assert hashlib.sha256(response.content).hexdigest() == blob["sha256"]


def test_head_gives_headers_without_body(blob):
    response = requests.head(blob["url"], timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(blob["size"])
    assert response.content == b""


def test_range_requests_return_the_right_slice(blob):
    full = _get(blob["url"]).content
    start = BLOCK + 5  # inside the second block, past its header
    tail = _get(blob["url"], headers={"Range": f"bytes={start}-"})
    assert tail.status_code == 206
    assert tail.headers["Content-Range"] == f"bytes {start}-{blob['size'] - 1}/{blob['size']}"
    assert tail.content == full[start:]
    window = _get(blob["url"], headers={"Range": "bytes=10-19"})
    assert window.status_code == 206 and window.content == full[10:20]
    beyond = _get(blob["url"], headers={"Range": f"bytes={blob['size']}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{blob['size']}"


def test_blocks_differ_so_misplaced_ranges_are_detectable():
    stored = BlobStore().create(2 * BLOCK, seed=1)
    first, second = (b"".join(stored.iter_range(k * BLOCK, (k + 1) * BLOCK)) for k in (0, 1))
    assert first != second and first[16:] == second[16:]
    assert BlobStore().create(2 * BLOCK, seed=1).md5 == stored.md5 != BlobStore().create(2 * BLOCK, seed=2).md5


def test_bad_or_missing_signature_is_denied(blob):
    tampered = blob["url"].replace("Signature=", "Signature=0")
    for url in (tampered, blob["url"].split("?")[0]):
        response = _get(url)
        assert response.status_code == 403
        assert "<Code>AccessDenied</Code><Message>Invalid signature</Message>" in response.text


def test_expired_url_is_denied(emu, blob):
    expired = emu.state.signed_url(emu.url, blob["blob_id"], ttl=-1)
    response = _get(expired)
    assert response.status_code == 403
    assert "<Code>AccessDenied</Code><Message>Request has expired</Message>" in response.text


def test_expire_fault_denies_a_valid_url_once(emu, blob):
    emu.control.add_fault("/blobs/", kind="expire")
    first = _get(blob["url"])
    assert first.status_code == 403 and "Request has expired" in first.text
    assert _get(blob["url"]).status_code == 200


def test_ignore_range_answers_full_body(emu, blob):
    emu.control.add_fault("/blobs/", kind="ignore_range")
    response = _get(blob["url"], headers={"Range": "bytes=100-"})
    assert response.status_code == 200
    assert "Content-Range" not in response.headers
    assert hashlib.md5(response.content).hexdigest() == blob["md5"]


def test_drop_cuts_the_body_mid_way(emu, blob):
    emu.control.add_fault("/blobs/", kind="drop", after_bytes=MIB + 7)
    url = urlsplit(blob["url"])
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.request("GET", f"{url.path}?{url.query}")
    response = connection.getresponse()
    assert response.getheader("Content-Length") == str(blob["size"])
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    connection.close()
    assert len(cut.value.partial) == MIB + 7
    assert len(_get(blob["url"]).content) == blob["size"]  # fault consumed: next download completes


def test_corrupt_keeps_size_but_breaks_checksum(emu, blob):
    emu.control.add_fault("/blobs/", kind="corrupt")
    response = _get(blob["url"])
    assert len(response.content) == blob["size"]
    assert hashlib.md5(response.content).hexdigest() != blob["md5"]


def test_slow_throttles_the_body(emu, emulator):
    small = emu.control.create_blob(40_000, "slow.bin")
    emu.control.add_fault("/blobs/", kind="slow", rate=100_000)
    started = time.monotonic()
    response = _get(small["url"])
    assert len(response.content) == small["size"]
    assert time.monotonic() - started >= 0.35


def test_status_fault_with_retry_after_is_consumed_exactly_times(emu, blob):
    fault_id = emu.control.add_fault("/blobs/", kind="status", status=503, retry_after=7, times=2)
    answers = [_get(blob["url"]) for _ in range(3)]
    assert [r.status_code for r in answers] == [503, 503, 200]
    assert [r.headers.get("Retry-After") for r in answers[:2]] == ["7", "7"]
    plan = emu.control.faults()
    assert plan["faults"] == []
    assert [a["id"] for a in plan["applied"]] == [fault_id, fault_id]


def test_method_filter_and_envelope_fault(emu, blob):
    emu.control.add_fault("/blobs/", kind="envelope", method="HEAD", body={"code": 1004, "message": "busy"})
    assert _get(blob["url"]).status_code == 200  # GET does not match a HEAD-only fault
    head = requests.head(blob["url"], timeout=10)
    assert head.status_code == 200 and head.headers["Content-Type"].startswith("application/json")
    assert len(emu.control.faults()["applied"]) == 1


def test_forever_fault_until_cleared(emu, blob):
    emu.control.add_fault("/blobs/", status=429, times=-1)
    assert [_get(blob["url"]).status_code for _ in range(3)] == [429] * 3
    emu.control.clear_faults()
    assert _get(blob["url"]).status_code == 200


def test_hang_fault_trips_client_timeout(emu, blob):
    emu.control.add_fault("/blobs/", kind="hang", seconds=3)
    with pytest.raises(requests.exceptions.Timeout):
        requests.get(blob["url"], timeout=0.3)


def test_invalid_fault_is_rejected(emu):
    with pytest.raises(requests.HTTPError):
        emu.control.add_fault("/x", kind="explode")


def test_request_log_filters_by_path_and_keeps_headers(emu, blob):
    emu.control.clear_requests()
    _get(blob["url"], headers={"X-Probe": "one"})
    _get(f"{emu.url}/elsewhere/nothing")
    log = emu.control.requests(path=r"^/blobs/")
    assert len(log) == 1
    assert log[0]["method"] == "GET" and log[0]["status"] == 200
    assert log[0]["headers"]["X-Probe"] == "one" and "Signature" in log[0]["query"]
    assert [e["status"] for e in emu.control.requests(path="elsewhere")] == [404]
    assert not emu.control.requests(path="_emulator")  # control calls are not logged


def test_config_merges_and_reset_restores(emu):
    emu.control.configure(stage_seconds=0.5, custom="x")
    config = emu.control.config()
    assert config["stage_seconds"] == 0.5 and config["custom"] == "x" and config["polls_per_stage"] == 1
    emu.control.reset()
    assert "custom" not in emu.control.config()


def test_scenarios_are_fifo_per_provider(emu):
    emu.control.push_scenario("minimax", outcome="fail")
    emu.control.push_scenario("minimax", outcome="ok")
    assert emu.state.next_scenario("qianfan") == {}
    assert [emu.state.next_scenario("minimax") for _ in range(3)] == [{"outcome": "fail"}, {"outcome": "ok"}, {}]


def test_jobs_debug_endpoint(emu):
    emu.state.add_job("flighthub2", Job("j1", ["queued", "done"]))
    assert [j["stage"] for j in emu.control.jobs("flighthub2")] == ["queued"]


def test_job_advances_one_stage_per_poll():
    job = Job("j", ["queued", "running", "success"])
    config = {"polls_per_stage": 1, "stage_seconds": 3600}
    assert job.peek(config) == "queued"
    assert [job.observe(config) for _ in range(5)] == ["queued", "running", "success", "success", "success"]


def test_job_polls_per_stage_two():
    job = Job("j", ["a", "b"])
    assert [job.observe({"polls_per_stage": 2}) for _ in range(4)] == ["a", "a", "b", "b"]
    assert job.peek({"polls_per_stage": 2}) == "b"


def test_job_wall_clock_and_never_finishing():
    config = {"polls_per_stage": 0, "stage_seconds": 10}
    job = Job("j", ["queued", "running", "success"], created_at=time.time() - 15)
    assert job.observe(config) == "running"
    assert Job("j", ["queued", "running", "success"]).peek({"stage_seconds": 0}) == "success"
    stuck = Job("j", ["queued", "running"], created_at=time.time() - 1e6)
    assert stuck.observe(config) == "running"  # never reaches a terminal stage
