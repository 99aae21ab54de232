"""The four MiniMax DAGs end to end with dag.test() against the emulator: bytes, manifests, failures, reruns."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from artifact_harvest.minimax.hook import MiniMaxHook
from tests.support import load_dag, task_states
from harvest_emulator.credentials import MINIMAX_API_KEY
from harvest_emulator.minimax import (
    DEMO_RUNS,
    DEFAULT_VIDEO_SIZE,
    SEED_SPEECH_FILE_ID,
    SEED_VIDEO_FILE_ID,
    SEED_VIDEO_FILE_ID_2,
)

FAST = {"poll_interval": 0.05, "timeout": "PT30S"}
#: the inputs each paid DAG requires (no demo defaults), plus fast polling
INPUTS = {"minimax_generate_video": {"prompt": "a red kite", **FAST},
          "minimax_generate_speech": {"text": "hello there", **FAST}}
VIDEO = INPUTS["minimax_generate_video"]


def archived(archive_root: Path, file_id: int) -> dict:
    manifest = json.loads((archive_root / "minimax" / str(file_id) / "manifest.json").read_text())
    data = (archive_root / "minimax" / str(file_id) / manifest["filename"]).read_bytes()
    assert len(data) == manifest["size_bytes"]
    assert hashlib.sha256(data).hexdigest() == manifest["sha256"]
    return manifest


def remote_sha256(file_id: int) -> str:
    """The bytes the emulator serves for the file, fetched independently of the pipeline."""
    body = requests.get(MiniMaxHook().retrieve_file(file_id).download_url, timeout=10).content
    return hashlib.sha256(body).hexdigest()


def output(capfd) -> str:
    """What the task runner printed (dag.test() logs task errors through structlog, not logging)."""
    out, err = capfd.readouterr()
    return out + err


def assert_clean(manifest: dict) -> None:
    text = json.dumps(manifest)
    assert "Signature=" not in text and "download_url" not in text and MINIMAX_API_KEY not in text


@pytest.fixture
def sandbox(airflow_db, emu, archive_root, staging_dir):
    return emu


def test_generate_video_end_to_end(sandbox, archive_root, capfd):
    run = load_dag("minimax_generate_video").test(run_conf={"prompt": "a red kite", "model": "T2V-01", **FAST})
    assert run.state == "success", task_states(run)
    [job] = sandbox.control.jobs("minimax")
    file_id = int(job["data"]["file_id"])
    manifest = archived(archive_root, file_id)
    assert manifest["provider"] == "minimax" and manifest["artifact_key"] == str(file_id)
    assert manifest["source"] == {"file_id": file_id, "task_id": job["job_id"]}
    assert manifest["size_bytes"] == DEFAULT_VIDEO_SIZE
    assert manifest["sha256"] == remote_sha256(file_id)
    assert job["data"]["body"]["model"] == "T2V-01" and job["data"]["body"]["duration"] == 6
    assert manifest["usage"] == {  # the duration sent; the frame size the query reported
        "video_seconds": {"value": 6, "unit": "s", "source": "request"},
        "resolution": {"value": "1366x768", "unit": "px", "source": "provider"}}
    assert_clean(manifest)
    text = output(capfd)
    assert "download_and_archive" in text  # the run's log was captured ...
    assert MINIMAX_API_KEY not in text and "Signature=" not in text  # ... and leaks neither key nor signed URL


def test_generate_speech_archives_bundle_and_lists_members(sandbox, archive_root):
    run = load_dag("minimax_generate_speech").test(run_conf={"text": "hello there", "format": "wav", **FAST})
    assert run.state == "success", task_states(run)
    [job] = sandbox.control.jobs("minimax")
    file_id = int(job["data"]["file_id"])
    manifest = archived(archive_root, file_id)
    # usage_characters of the create answer (the emulator counts the text: 11), not the bundle's extra (4)
    assert manifest["usage"] == {"characters": {"value": 11, "unit": "characters", "source": "provider"}}
    assert manifest["sha256"] == remote_sha256(file_id)
    members = manifest["extra"]["members"]
    assert sorted(m["kind"] for m in members) == ["audio", "extra", "subtitles"]
    audio = next(m for m in members if m["kind"] == "audio")
    assert audio["name"].endswith(".wav") and audio["size"] > 0 and len(audio["sha256"]) == 64
    assert manifest["extra"]["minimax_file"]["purpose"] == "t2a_async"
    assert_clean(manifest)


@pytest.mark.parametrize(("dag_id", "scenario", "spelling"), [
    ("minimax_generate_video", {"outcome": "fail"}, "Fail"),
    ("minimax_generate_video", {"outcome": "fail", "status_spelling": "Failed"}, "Failed"),
    ("minimax_generate_speech", {"outcome": "expired"}, "expired"),
])
def test_failed_task_fails_the_run_and_archives_nothing(sandbox, archive_root, capfd, dag_id, scenario, spelling):
    sandbox.control.push_scenario("minimax", **scenario)
    run = load_dag(dag_id).test(run_conf=INPUTS[dag_id])
    assert run.state == "failed"
    assert task_states(run)["wait"] == "failed" and task_states(run)["download_and_archive"] == "upstream_failed"
    assert f"status {spelling!r}" in output(capfd)
    assert not any(archive_root.iterdir())


def test_terminal_code_on_create_fails_with_its_meaning(sandbox, archive_root, capfd):
    sandbox.control.push_scenario("minimax", error_code=1008)
    run = load_dag("minimax_generate_video").test(run_conf=VIDEO)
    assert run.state == "failed" and task_states(run)["create"] == "failed"
    text = output(capfd)
    assert "insufficient balance" in text and "code 1008" in text
    assert len(sandbox.control.requests("/v1/video_generation")) == 1  # fatal: neither retried nor resubmitted
    assert not any(archive_root.iterdir())


def test_rate_limited_polling_recovers(sandbox, archive_root):
    sandbox.control.add_fault(route="/v1/query/video_generation", kind="envelope",
                              body={"base_resp": {"status_code": 1002, "status_msg": "rate limit"}}, times=2)
    run = load_dag("minimax_generate_video").test(run_conf=VIDEO)
    assert run.state == "success", task_states(run)
    assert len([a for a in sandbox.control.faults()["applied"] if a["kind"] == "envelope"]) == 2


def test_archive_file_refreshes_a_url_refused_as_expired(sandbox, archive_root):
    sandbox.control.add_fault(route="^/blobs/", kind="expire", times=1)
    run = load_dag("minimax_archive_file").test(run_conf={"file_id": SEED_VIDEO_FILE_ID})
    assert run.state == "success", task_states(run)
    # sensor once, download once, and once more for a fresh URL after the 403
    assert len(sandbox.control.requests("/v1/files/retrieve")) == 3
    assert [a["kind"] for a in sandbox.control.faults()["applied"]] == ["expire"]
    manifest = archived(archive_root, SEED_VIDEO_FILE_ID)
    assert manifest["sha256"] == remote_sha256(SEED_VIDEO_FILE_ID)
    assert manifest["source"] == {"file_id": SEED_VIDEO_FILE_ID}
    assert manifest["usage"] == {}  # a file made elsewhere: nothing known, recorded as unknown (not zero)


def test_archive_file_twice_downloads_once(sandbox, archive_root):
    dag = load_dag("minimax_archive_file")
    assert dag.test(run_conf={"file_id": SEED_SPEECH_FILE_ID}).state == "success"
    first = archived(archive_root, SEED_SPEECH_FILE_ID)
    # no create step: the bundle's extra JSON says what MiniMax counted
    assert first["usage"] == {"characters": {"value": 4, "unit": "characters", "source": "provider"}}
    assert dag.test(run_conf={"file_id": SEED_SPEECH_FILE_ID}).state == "success"
    assert archived(archive_root, SEED_SPEECH_FILE_ID) == first
    assert len(sandbox.control.requests("^/blobs/")) == 1


def test_hourly_sweep_archives_the_interval_once(sandbox, archive_root):
    dag = load_dag("minimax_archive_new_files")
    seeds = {SEED_VIDEO_FILE_ID, SEED_VIDEO_FILE_ID_2, SEED_SPEECH_FILE_ID}
    earlier = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3)
    run = dag.test(logical_date=earlier)
    assert run.state == "success", task_states(run)
    assert not any(archive_root.iterdir())  # nothing was created three hours ago

    now = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=1)
    run = dag.test(logical_date=now)
    assert run.state == "success", task_states(run)
    assert run.data_interval_end - run.data_interval_start == timedelta(hours=1)
    assert {int(p.name) for p in (archive_root / "minimax").iterdir()} == seeds
    manifests = {file_id: archived(archive_root, file_id) for file_id in seeds}
    downloads = len(sandbox.control.requests("^/blobs/"))
    assert downloads == 3

    rerun = dag.test(logical_date=now + timedelta(seconds=1))  # the same hour again, as a backfill would
    assert rerun.state == "success", task_states(rerun)
    assert len(sandbox.control.requests("^/blobs/")) == downloads
    assert {file_id: archived(archive_root, file_id) for file_id in seeds} == manifests


def test_hourly_sweep_triggered_without_logical_date_covers_the_hour_before(sandbox, archive_root):
    """How make demo (REST, ``logical_date: null``) and the UI trigger it: no data interval at all."""
    run = load_dag("minimax_archive_new_files").test(logical_date=None)
    assert run.state == "success", task_states(run)
    assert run.data_interval_start is None
    assert {int(p.name) for p in (archive_root / "minimax").iterdir()} == {
        SEED_VIDEO_FILE_ID, SEED_VIDEO_FILE_ID_2, SEED_SPEECH_FILE_ID}


@pytest.mark.parametrize(("dag_id", "conf"), DEMO_RUNS, ids=[dag_id for dag_id, _ in DEMO_RUNS])
def test_demo_runs_succeed_on_a_wall_clock_emulator(sandbox, archive_root, dag_id, conf):
    """make demo's runs, on a time-driven emulator (sped up) and triggered without a logical date."""
    sandbox.control.configure(polls_per_stage=0, stage_seconds=0.1)
    conf = {**conf, **({"poll_interval": 0.05} if "poll_interval" in conf else {})}
    run = load_dag(dag_id).test(run_conf=conf, logical_date=None)
    assert run.state == "success", task_states(run)
    assert any((archive_root / "minimax").iterdir())


def test_url_expiring_mid_download_is_refreshed_and_resumed(sandbox, archive_root):
    """A 2 s URL, a download that drops after 2.5 s: the resume finds the URL expired, asks files/retrieve for a
    fresh one and continues from where it stopped."""
    size, cut = 128 * 1024, 80 * 1024
    sandbox.control.configure(url_ttl_seconds=2)
    sandbox.control.push_scenario("minimax", size=size)
    sandbox.control.add_fault(route="^/blobs/", kind="slow", rate=32 * 1024, times=1)
    sandbox.control.add_fault(route="^/blobs/", kind="drop", after_bytes=cut, times=1)
    run = load_dag("minimax_generate_video").test(run_conf=VIDEO)
    assert run.state == "success", task_states(run)
    blob_calls = sandbox.control.requests("^/blobs/")
    assert [c["status"] for c in blob_calls] == [200, 403, 206]
    assert blob_calls[2]["headers"]["Range"] == f"bytes={cut}-"
    assert blob_calls[2]["query"]["Signature"] != blob_calls[0]["query"]["Signature"]
    retrieves = [c["time"] for c in sandbox.control.requests("/v1/files/retrieve")]
    assert sum(t > blob_calls[1]["time"] for t in retrieves) == 1  # exactly one refresh, after the 403
    [job] = sandbox.control.jobs("minimax")
    file_id = int(job["data"]["file_id"])
    manifest = archived(archive_root, file_id)
    assert manifest["size_bytes"] == size and manifest["sha256"] == remote_sha256(file_id)
