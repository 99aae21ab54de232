"""Every endpoint of the Artifacts app through Airflow's API server app: list, filters, paging, detail,
download, verify, auth (401/403 through the auth manager), traversal, and the error states."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from tests.ui.auth_manager import HIDDEN_DAG

API = "/artifacts/api"


def manifests(root: Path) -> dict[tuple[str, str], dict]:
    return {(m["provider"], m["artifact_key"]): m
            for m in (json.loads(p.read_text()) for p in root.glob("*/*/manifest.json"))}


def mine(client, archived, **params) -> list[dict]:
    """The listed artifacts of this module's runs (the session DB also holds other tests' events)."""
    run_ids = {run.run_id for run in archived.values()}
    body = client.get(f"{API}/artifacts", params={"limit": 200, **params}).json()
    return [a for a in body["artifacts"] if a["run_id"] in run_ids]


def poll_verify(client, job: dict, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while job["state"] == "running":
        assert time.monotonic() < deadline, job
        job = client.get(f"{API}/verify/{job['job_id']}").json()
    return job


def test_list_shows_every_archived_artifact_with_its_facts(viewer, archived, ui_archive):
    stored = manifests(ui_archive)
    assert len(stored) == 4  # speech bundle, video, two reconstructed models (mapped)
    listed = {(a["provider"], a["artifact_key"]): a for a in mine(viewer, archived)}
    assert set(listed) == set(stored)
    for key, item in listed.items():
        m = stored[key]
        assert (item["filename"], item["size_bytes"], item["sha256"]) == (m["filename"], m["size_bytes"], m["sha256"])
        assert (item["dag_id"], item["run_id"], item["archived_at"]) == (m["dag_id"], m["run_id"], m["archived_at"])


def test_filters_provider_dag_run_text_and_dates(viewer, archived, ui_archive):
    assert {a["provider"] for a in mine(viewer, archived, provider="flighthub2")} == {"flighthub2"}
    assert len(mine(viewer, archived, provider="flighthub2")) == 2
    assert {a["dag_id"] for a in mine(viewer, archived, dag_id="minimax_generate_video")} == {"minimax_generate_video"}
    run = archived["flighthub2_reconstruct_model"]
    assert len(viewer.get(f"{API}/artifacts", params={"dag_id": run.dag_id, "run_id": run.run_id}).json()["artifacts"]) == 2
    speech = next(m for m in manifests(ui_archive).values() if m["dag_id"] == "minimax_generate_speech")
    assert [a["artifact_key"] for a in mine(viewer, archived, q=speech["artifact_key"])] == [speech["artifact_key"]]
    by_name = mine(viewer, archived, q=speech["filename"][-7:].upper())  # a file-name fragment, any case
    assert speech["artifact_key"] in {a["artifact_key"] for a in by_name}
    assert mine(viewer, archived, since="2999-01-01T00:00:00Z") == []
    assert mine(viewer, archived, until="2000-01-01T00:00:00Z") == []
    assert len(mine(viewer, archived, since="2000-01-01T00:00:00Z", until="2999-01-01T00:00:00Z")) == 4
    empty = viewer.get(f"{API}/artifacts", params={"dag_id": "no_such_dag"}).json()
    assert empty["total"] == 0 and empty["artifacts"] == []
    facets = viewer.get(f"{API}/filters").json()
    assert {"minimax", "flighthub2"} <= set(facets["providers"]) and HIDDEN_DAG in facets["dags"]


def test_paging_is_stable_and_counts_the_total(viewer, archived):
    since = min(run.start_date for run in archived.values()).isoformat()  # this module's runs, not the session's
    body = viewer.get(f"{API}/artifacts", params={"limit": 200, "since": since}).json()
    total = body["total"]
    assert total == len(body["artifacts"]) == 4
    pages = [viewer.get(f"{API}/artifacts", params={"limit": 2, "offset": o, "since": since}).json()
             for o in range(0, total, 2)]
    assert all(p["total"] == total for p in pages)
    flat = [a["event_id"] for p in pages for a in p["artifacts"]]
    assert flat == [a["event_id"] for a in body["artifacts"]]  # newest first, no gaps, no repeats
    assert viewer.get(f"{API}/artifacts", params={"limit": 201}).status_code == 422


def test_detail_has_manifest_source_ids_and_bundle_members(viewer, archived, ui_archive):
    for (provider, key), m in manifests(ui_archive).items():
        d = viewer.get(f"{API}/artifacts/{provider}/{key}").json()
        assert d["manifest"] == m and d["source"] == m["source"] and d["data_file"]["present"] is True
        if m["dag_id"] == "minimax_generate_speech":
            assert d["members"] and d["members"] == m["extra"]["members"]


def test_download_streams_the_archived_bytes_under_the_manifest_name(viewer, archived, ui_archive):
    for (provider, key), m in manifests(ui_archive).items():
        resp = viewer.get(f"{API}/artifacts/{provider}/{key}/download")
        assert resp.status_code == 200
        assert resp.content == (ui_archive / provider / key / m["filename"]).read_bytes()
        assert hashlib.sha256(resp.content).hexdigest() == m["sha256"]
        assert int(resp.headers["content-length"]) == m["size_bytes"]
        assert f'filename="{m["filename"]}"' in resp.headers["content-disposition"]


def test_verify_good_and_tampered(viewer, archived, ui_archive):
    (provider, key), m = next((k, v) for k, v in manifests(ui_archive).items() if v["provider"] == "flighthub2")
    started = viewer.post(f"{API}/artifacts/{provider}/{key}/verify")
    assert started.status_code == 202 and started.json()["state"] == "running"
    job = poll_verify(viewer, started.json())
    assert job["state"] == "done" and job["ok"] is True and job["actual_sha256"] == m["sha256"]
    assert job["bytes_done"] == m["size_bytes"]

    data = ui_archive / provider / key / m["filename"]
    original = data.read_bytes()
    data.write_bytes(bytes([original[0] ^ 0xFF]) + original[1:])  # same size, one byte flipped
    try:
        job = poll_verify(viewer, viewer.post(f"{API}/artifacts/{provider}/{key}/verify").json())
        assert job["state"] == "done" and job["ok"] is False
        assert job["actual_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest() != m["sha256"]
    finally:
        data.write_bytes(original)


def test_verify_runs_once_per_artifact_and_at_most_the_limit_hashing_gated(
        client_for, viewer, archived, ui_archive, monkeypatch):
    """Concurrent Verify requests through the API: one hashing per artifact (later requests join it), at most
    ``verify_concurrency`` at once, 429 with Retry-After past that. Each real hashing waits on a gate until the
    test opens it, so the count of hashings running is exact (the gate wraps ``store._verify``, which still runs)."""
    import threading

    from artifact_harvest.ui import store

    monkeypatch.setenv("AIRFLOW__ARTIFACT_HARVEST__VERIFY_CONCURRENCY", "2")
    gate, lock = threading.Event(), threading.Lock()
    hashing: list[str] = []
    real = store._verify

    def gated(artifact, job, *args, **kwargs):
        with lock:
            hashing.append(job["artifact_key"])
        try:
            assert gate.wait(timeout=60), "the test never opened the gate"
            real(artifact, job, *args, **kwargs)
        finally:
            with lock:
                hashing.remove(job["artifact_key"])

    monkeypatch.setattr(store, "_verify", gated)
    artifacts = sorted(manifests(ui_archive))
    assert len(artifacts) == 4
    requests_ = [artifacts[0]] * 3 + artifacts[1:]  # three for one artifact, one for each of the others
    clients = [client_for("viewer", cookie=True) for _ in requests_]
    start = threading.Barrier(len(requests_))
    answers: list = [None] * len(requests_)

    def ask(i: int) -> None:
        start.wait(timeout=30)
        provider, key = requests_[i]
        answers[i] = clients[i].post(f"{API}/artifacts/{provider}/{key}/verify")

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(requests_))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert all(a is not None for a in answers)
        assert sorted({a.status_code for a in answers}) in ([202], [202, 429]), [a.text for a in answers]
        accepted = [(requests_[i], a.json()) for i, a in enumerate(answers) if a.status_code == 202]
        refused = [a for a in answers if a.status_code == 429]
        jobs = {key: {job["job_id"] for (_, k), job in accepted if k == key} for (_, key), _ in accepted}
        assert all(len(ids) == 1 for ids in jobs.values()), "one job per artifact, every request for it joins"
        assert len(jobs) == 2 and len(refused) == len(requests_) - sum(
            requests_.count(r) for r in {r for r, _ in accepted}), "two artifacts admitted, the rest refused"
        assert sorted(hashing) == sorted(jobs), "exactly one hashing per admitted artifact, two in all"
        assert sum(1 for _, job in accepted if not job["joined"]) == 2
        for answer in refused:
            assert answer.headers["retry-after"] and "verify_concurrency" in answer.json()["detail"]
        # while they hash: the same artifact joins, another is refused
        admitted = next(r for r, _ in accepted)
        again = viewer.post(f"{API}/artifacts/{admitted[0]}/{admitted[1]}/verify").json()
        assert again["joined"] is True and again["job_id"] in jobs[admitted[1]]
        other = next(r for r in artifacts if r[1] not in jobs)
        assert viewer.post(f"{API}/artifacts/{other[0]}/{other[1]}/verify").status_code == 429
        assert len(hashing) == 2
    finally:
        gate.set()
    for ids in jobs.values():
        done = poll_verify(viewer, {"job_id": next(iter(ids)), "state": "running"})
        assert done["state"] == "done" and done["ok"] is True, done
    # the slots are free again: the refused artifact now starts a hashing of its own
    job = viewer.post(f"{API}/artifacts/{other[0]}/{other[1]}/verify").json()
    assert job["joined"] is False
    assert poll_verify(viewer, job)["ok"] is True


def _one(ui_archive, dag_id: str) -> tuple[str, str]:
    return next(k for k, m in manifests(ui_archive).items() if m["dag_id"] == dag_id)


@pytest.mark.parametrize("method,path", [
    ("GET", "/artifacts/"), ("GET", f"{API}/artifacts"), ("GET", f"{API}/filters"), ("GET", f"{API}/store"),
    ("GET", f"{API}/usage"),
    ("GET", f"{API}/artifacts/{{p}}/{{k}}"), ("GET", f"{API}/artifacts/{{p}}/{{k}}/download"),
    ("POST", f"{API}/artifacts/{{p}}/{{k}}/verify"), ("GET", f"{API}/verify/{'0' * 32}"),
])
def test_anonymous_gets_401_everywhere(client_for, archived, ui_archive, method, path):
    provider, key = _one(ui_archive, "minimax_generate_video")
    resp = client_for(None).request(method, path.format(p=provider, k=key))
    assert resp.status_code == 401, resp.text


def test_a_forged_token_is_refused(client_for, archived):
    client = client_for(None)
    client.headers["Authorization"] = "Bearer not.a.jwt"
    assert client.get(f"{API}/artifacts").status_code in (401, 403)


def test_a_user_without_the_dag_gets_403_and_does_not_see_its_rows(client_for, viewer, archived, ui_archive):
    restricted = client_for("restricted")
    provider, key = _one(ui_archive, HIDDEN_DAG)
    listed = mine(restricted, archived)
    assert len(listed) == 3 and all(a["dag_id"] != HIDDEN_DAG for a in listed)
    assert HIDDEN_DAG not in restricted.get(f"{API}/filters").json()["dags"]
    assert restricted.get(f"{API}/artifacts", params={"dag_id": HIDDEN_DAG}).json()["total"] == 0
    for method, suffix in [("GET", ""), ("GET", "/download"), ("POST", "/verify")]:
        resp = restricted.request(method, f"{API}/artifacts/{provider}/{key}{suffix}")
        assert resp.status_code == 403, resp.text
        assert "content-disposition" not in resp.headers
    job = viewer.post(f"{API}/artifacts/{provider}/{key}/verify").json()  # someone allowed started it
    assert restricted.get(f"{API}/verify/{job['job_id']}").status_code == 403
    # the same user reads every other DAG's artifacts
    other = _one(ui_archive, "minimax_generate_video")
    assert restricted.get(f"{API}/artifacts/{other[0]}/{other[1]}").status_code == 200


@pytest.mark.parametrize("path", [
    "/artifacts/minimax/..%2F..%2Fetc%2Fpasswd/download",
    "/artifacts/..%2Fminimax/{k}/download",
    "/artifacts/minimax/%2E%2E/download",
    "/artifacts/minimax/{k}%2F..%2F..%2Fmanifest.json/download",
    "/artifacts/minimax/{k}%00/download",
    "/artifacts/minimax/..%5C..%5Cmanifest.json",
    "/verify/..%2F..%2F..%2Fetc%2Fpasswd",
])
def test_traversal_attempts_find_nothing(viewer, archived, ui_archive, path):
    _, key = _one(ui_archive, "minimax_generate_video")
    resp = viewer.get(API + path.format(k=key))
    assert resp.status_code in (404, 422), resp.text
    assert "root:" not in resp.text and "sha256" not in resp.text


def test_a_manifest_without_its_data_file_says_what_to_do(viewer, archived, ui_archive):
    provider, key = _one(ui_archive, "minimax_generate_video")
    m = manifests(ui_archive)[(provider, key)]
    data = ui_archive / provider / key / m["filename"]
    moved = data.with_name("moved-away")
    data.rename(moved)
    try:
        detail = viewer.get(f"{API}/artifacts/{provider}/{key}").json()
        assert detail["data_file"]["present"] is False
        assert m["filename"] in detail["data_file"]["error"] and "clear task" in detail["data_file"]["hint"]
        resp = viewer.get(f"{API}/artifacts/{provider}/{key}/download")
        assert resp.status_code == 409 and m["filename"] in resp.json()["detail"]
        assert viewer.post(f"{API}/artifacts/{provider}/{key}/verify").status_code == 409
    finally:
        moved.rename(data)


def test_an_unreachable_store_gives_its_message_without_secrets(viewer, archived, ui_archive, monkeypatch):
    """An s3:// root on an endpoint where nothing listens: the store's message, never the key or secret."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    secret = "SECRETsecretSECRET1234"
    conn = {"conn_type": "aws", "login": "AKIATESTKEY", "password": secret,
            "extra": {"endpoint_url": f"http://127.0.0.1:{port}",
                      "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}}}
    # a connection id of its own: Airflow caches the filesystem it opens per connection id
    monkeypatch.setenv("AIRFLOW_CONN_ARCHIVE_S3_UNREACHABLE", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_VAR_ARTIFACT_ARCHIVE_ROOT", "s3://harvest-archive/root")
    monkeypatch.setenv("AIRFLOW_VAR_ARTIFACT_ARCHIVE_CONN_ID", "archive_s3_unreachable")
    provider, key = _one(ui_archive, "minimax_generate_video")
    status = viewer.get(f"{API}/store").json()
    assert status["reachable"] is False and status["error"]
    resp = viewer.get(f"{API}/artifacts/{provider}/{key}/download")
    assert resp.status_code == 503 and "unreachable" in resp.json()["detail"]
    assert "artifact_archive_root" in resp.json()["hint"]
    for text in (json.dumps(status), resp.text):
        assert secret not in text and "AKIATESTKEY" not in text
    # the index still lists it: listing never touches the store
    assert any(a["artifact_key"] == key for a in mine(viewer, archived))


def _usage(client, **params) -> list[dict]:
    resp = client.get(f"{API}/usage", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()["groups"]


def test_usage_sums_per_provider_dag_and_month(viewer, client_for, archived, ui_archive):
    month = {m["dag_id"]: m["archived_at"][:7] for m in manifests(ui_archive).values()}
    by_run = {dag_id: _usage(viewer, dag_id=dag_id, run_id=run.run_id) for dag_id, run in archived.items()}
    speech = "minimax_generate_speech"
    assert by_run[speech] == [{  # usage_characters of the create answer: "hello there"
        "provider": "minimax", "dag_id": speech, "month": month[speech], "artifacts": 1, "unknown": 0,
        "quantities": [{"name": "characters", "unit": "characters", "total": 11, "artifacts": 1,
                        "sources": {"provider": 1}}]}]
    [video] = by_run["minimax_generate_video"]
    assert video["quantities"] == [  # the duration sent (a number, summed); the frame size reported (counted)
        {"name": "video_seconds", "unit": "s", "total": 6, "artifacts": 1, "sources": {"request": 1}},
        {"name": "resolution", "unit": "", "values": {"1366x768": 1}, "artifacts": 1, "sources": {"provider": 1}}]
    [models] = by_run["flighthub2_reconstruct_model"]
    assert (models["provider"], models["artifacts"], models["unknown"]) == ("flighthub2", 2, 0)
    photos = len(list(Path(archived["flighthub2_reconstruct_model"].conf["photos"]).iterdir()))
    assert models["quantities"] == [  # each model counts the photos it was made from
        {"name": "images", "unit": "images", "total": 2 * photos, "artifacts": 2, "sources": {"provider": 2}},
        {"name": "model_type", "unit": "", "values": {"2d": 1, "3d": 1}, "artifacts": 2, "sources": {"provider": 2}}]
    since = min(run.start_date for run in archived.values()).isoformat()
    body = viewer.get(f"{API}/usage", params={"since": since}).json()
    assert (body["artifacts"], body["unknown"]) == (4, 0)
    assert {(g["provider"], g["dag_id"]) for g in body["groups"]} == {
        ("minimax", speech), ("minimax", "minimax_generate_video"), ("flighthub2", "flighthub2_reconstruct_model")}
    assert _usage(viewer, provider="qianfan", since=since) == []
    # a user who may not read a DAG does not see its usage either
    restricted = client_for("restricted").get(f"{API}/usage", params={"since": since}).json()
    assert restricted["artifacts"] == 3 and HIDDEN_DAG not in {g["dag_id"] for g in restricted["groups"]}


def test_usage_of_an_old_manifest_is_unknown_not_zero(viewer, archived, ui_archive):
    """A manifest written before usage was recorded (no ``usage`` key), in a month of its own."""
    from datetime import datetime, timezone

    from sqlalchemy import delete, insert, select

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    run = archived["minimax_generate_video"]
    old = {k: v for k, v in manifests(ui_archive).items() if v["dag_id"] == run.dag_id}.popitem()[1]
    old = {k: v for k, v in old.items() if k != "usage"} | {"artifact_key": "old-1", "run_id": "old-run",
                                                           "archived_at": "2025-01-15T12:00:00+00:00"}
    with create_session() as session:
        asset_id = session.scalar(select(AssetModel.id).where(AssetModel.uri == "x-artifact-harvest://minimax"))
        session.execute(insert(AssetEvent), [{
            "asset_id": asset_id, "extra": old, "source_dag_id": run.dag_id, "source_run_id": "old-run",
            "source_task_id": "download_and_archive", "source_map_index": -1,
            "timestamp": datetime(2025, 1, 15, 12, tzinfo=timezone.utc)}])
    try:
        groups = _usage(viewer, dag_id=run.dag_id, since="2025-01-01T00:00:00Z")
        january = next(g for g in groups if g["month"] == "2025-01")
        assert (january["artifacts"], january["unknown"], january["quantities"]) == (1, 1, [])
        later = [g for g in groups if g["month"] != "2025-01"]
        assert later and all(g["month"] > "2025-01" for g in later)  # newest month first, the old one apart
        assert groups[-1]["month"] == "2025-01"
        assert sum(q["total"] for g in later for q in g["quantities"] if q["name"] == "video_seconds") >= 6
    finally:
        with create_session() as session:
            session.execute(delete(AssetEvent).where(AssetEvent.source_run_id == "old-run"))
