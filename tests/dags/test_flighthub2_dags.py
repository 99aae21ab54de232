"""The three FlightHub 2 DAGs end to end with dag.test() against the emulator: bytes, manifests, failures,
a retried start that must not start twice, and a two-day backfill that archives nothing twice."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from artifact_harvest.flighthub2.hook import FlightHub2Hook
from artifact_harvest.flighthub2.operators import FlightHub2StartReconstructionOperator
from artifact_harvest.flighthub2.upload import PhotoUploader, UploadTarget, list_photos
from tests.support import StateStore, load_dag, task_states, uploaded_photos
from harvest_emulator.credentials import FLIGHTHUB2_TOKEN
from harvest_emulator.flighthub2 import DEFAULT_SIZE, DEMO_FILE_ID, DEMO_RUNS, UPLOAD_BUCKET

PHOTOS = Path(__file__).resolve().parents[2] / "include" / "sample_data" / "flighthub2_photos"
FAST = {"poll_interval": 0.05, "timeout": "PT30S"}
TYPE_NAMES = {1: "2d", 2: "3d", 3: "3dgs", 4: "lidar"}  # model_type enum → the DAG's name


def archived(archive_root: Path, key: str) -> dict:
    """The manifest of an archived artifact, after checking the archived bytes against it."""
    folder = archive_root / "flighthub2" / key
    manifest = json.loads((folder / "manifest.json").read_text())
    data = (folder / manifest["filename"]).read_bytes()
    assert len(data) == manifest["size_bytes"] and hashlib.sha256(data).hexdigest() == manifest["sha256"]
    text = json.dumps(manifest)
    assert "Signature=" not in text and FLIGHTHUB2_TOKEN not in text
    return manifest


def remote_sha256(file_id: str) -> str:
    """The bytes the emulator serves for the file, fetched independently of the pipeline."""
    return hashlib.sha256(requests.get(FlightHub2Hook().download_url(file_id)["url"], timeout=10).content).hexdigest()


def archived_keys(archive_root: Path) -> set[str]:
    return {p.parent.name for p in (archive_root / "flighthub2").glob("*/manifest.json")}


def upload(hook: FlightHub2Hook) -> str:
    """An open-modeling resource holding the sample photos, uploaded outside any DAG."""
    credential = hook.obtain_upload_credential()
    target = UploadTarget.from_credential(credential)
    etags = PhotoUploader(target, credential, hook.obtain_upload_credential).upload(
        list_photos(str(PHOTOS)), {}, lambda name, etag: None
    )
    hook.upload_callback(target.resource_uuid, target.callback_param, [{"name": n, "etag": e} for n, e in etags.items()])
    return target.resource_uuid


@pytest.fixture
def sandbox(airflow_db, emu, archive_root, staging_dir):
    return emu


def test_reconstruct_model_end_to_end(sandbox, archive_root, capfd, object_store):
    conf = {"photos": str(PHOTOS), "model_types": ["2d", "3d"], "parameters": {"3d": {"quality": "high"}},
            "resource_name": "survey", "delete_resource_when_done": True, **FAST}
    run = load_dag("flighthub2_reconstruct_model").test(run_conf=conf)
    assert run.state == "success", task_states(run)
    jobs = {job["data"]["model_type"]: job for job in sandbox.control.jobs("flighthub2")}
    assert set(jobs) == {1, 2}
    assert json.loads(jobs[2]["data"]["parameters"]) == {"quality": "high"}
    for job in jobs.values():
        manifest = archived(archive_root, job["job_id"])
        file_id = job["data"]["blob_id"]
        assert manifest["source"] == {"model_uuid": job["job_id"], "resource_uuid": job["data"]["resource_uuid"],
                                      "model_type": job["data"]["model_type"], "file_id": file_id}
        assert manifest["size_bytes"] == DEFAULT_SIZE and manifest["sha256"] == remote_sha256(file_id)
        assert manifest["usage"] == {  # as FlightHub 2 reports them: the model's type, the resource's photos
            "model_type": {"value": TYPE_NAMES[job["data"]["model_type"]], "unit": "", "source": "provider"},
            "images": {"value": len(list(PHOTOS.iterdir())), "unit": "images", "source": "provider"}}
    # mapped task instances are labelled "<model type> <model uuid>" in the UI, not 0, 1, ...
    labels = {TYPE_NAMES[t]: f"{TYPE_NAMES[t]} {job['job_id']}" for t, job in jobs.items()}
    for task_id in ("wait_for_model", "wait_for_download_url", "download_and_archive"):
        rendered = {ti.rendered_map_index for ti in run.get_task_instances() if ti.task_id == task_id}
        assert rendered == set(labels.values()), task_id
    stored = uploaded_photos(object_store, job["data"]["resource_uuid"])  # in moto's S3, SigV4 and all
    assert {name: o["body"] for name, o in stored.items()} == {p.name: p.read_bytes() for p in PHOTOS.iterdir()}
    assert len(sandbox.control.requests("reconstruction/start")) == 1
    resource = FlightHub2Hook().resource(job["data"]["resource_uuid"])
    assert resource["status"] == 3  # deleted when done
    output = "".join(capfd.readouterr())
    assert "upload_photos" in output  # the run's task logs were captured
    assert FLIGHTHUB2_TOKEN not in output and "Signature=" not in output  # no key, no signed URL in any log


def test_reconstruct_model_failure_archives_nothing(sandbox, archive_root):
    sandbox.control.push_scenario("flighthub2", outcome="reconstruction_failed", error_code=30177)
    run = load_dag("flighthub2_reconstruct_model").test(run_conf={"photos": str(PHOTOS), "model_types": ["3d"], **FAST})
    assert run.state == "failed"
    assert task_states(run)["wait_for_model[0]"] == "failed"
    assert not (archive_root / "flighthub2").exists() or archived_keys(archive_root) == set()
    assert sandbox.control.requests("download-url") == []


def test_start_retry_reattaches_instead_of_starting_twice(sandbox):
    hook = FlightHub2Hook()
    resource_uuid = upload(hook)
    store = StateStore()
    operator = FlightHub2StartReconstructionOperator(
        task_id="start_reconstruction", resource_uuid=resource_uuid, model_types=["2d", "3d"]
    )
    first = operator.execute({"task_state_store": store})
    second = operator.execute({"task_state_store": store})  # the retry
    assert first == second and [m["model_type"] for m in first] == ["2d", "3d"]
    assert len(sandbox.control.requests("reconstruction/start")) == 1
    assert len(sandbox.control.jobs("flighthub2")) == 2


def test_reconstruct_from_an_uploaded_resource(sandbox, archive_root, object_store):
    hook = FlightHub2Hook()
    resource_uuid = upload(hook)
    sandbox.control.clear_requests()
    photos_before = len(object_store.client().list_objects_v2(Bucket=UPLOAD_BUCKET).get("Contents", []))
    run = load_dag("flighthub2_reconstruct_model").test(
        run_conf={"resource_uuid": resource_uuid, "model_types": ["lidar"], **FAST}
    )
    assert run.state == "success", task_states(run)
    assert sandbox.control.requests("obtain_token") == []  # no upload credential, so no photo went up
    assert len(object_store.client().list_objects_v2(Bucket=UPLOAD_BUCKET).get("Contents", [])) == photos_before
    assert task_states(run)["delete_resource"] == "skipped"
    [job] = sandbox.control.jobs("flighthub2")
    assert archived(archive_root, job["job_id"])["source"]["resource_uuid"] == resource_uuid


def test_download_model_by_file_id(sandbox, archive_root):
    run = load_dag("flighthub2_download_model").test(run_conf={"file_id": DEMO_FILE_ID, **FAST})
    assert run.state == "success", task_states(run)
    assert task_states(run)["wait_for_model"] == "skipped"
    manifest = archived(archive_root, f"model-{DEMO_FILE_ID}")
    assert manifest["source"] == {"model_uuid": "", "file_id": DEMO_FILE_ID}
    assert manifest["sha256"] == remote_sha256(DEMO_FILE_ID)


def test_download_model_by_model_uuid(sandbox, archive_root):
    hook = FlightHub2Hook()
    model_uuid = hook.start_reconstruction(upload(hook), {"2d": {}})["2d"]
    run = load_dag("flighthub2_download_model").test(run_conf={"model_uuid": model_uuid, **FAST})
    assert run.state == "success", task_states(run)
    [job] = sandbox.control.jobs("flighthub2")
    manifest = archived(archive_root, model_uuid)
    assert manifest["sha256"] == remote_sha256(job["data"]["blob_id"])
    assert manifest["usage"] == {  # no upstream knew: the model's details and its resource, asked at download
        "model_type": {"value": "2d", "unit": "", "source": "provider"},
        "images": {"value": len(list(PHOTOS.iterdir())), "unit": "images", "source": "provider"}}


def test_download_model_needs_an_id(sandbox, archive_root):
    run = load_dag("flighthub2_download_model").test(run_conf=FAST)
    assert run.state == "failed" and task_states(run)["choose"] == "failed"  # at once: no retries
    [ti] = [ti for ti in run.get_task_instances() if ti.task_id == "choose"]
    assert ti.try_number == 1
    assert sandbox.control.requests("/openapi/") == []


def test_download_model_zip_failure(sandbox, archive_root):
    sandbox.control.push_scenario("flighthub2", outcome="zip_failed", error_code=30999)
    hook = FlightHub2Hook()
    model_uuid = hook.start_reconstruction(upload(hook), {"3d": {}})["3d"]
    run = load_dag("flighthub2_download_model").test(run_conf={"model_uuid": model_uuid, **FAST})
    assert run.state == "failed"
    assert task_states(run)["wait_for_model"] == "failed"
    assert not (archive_root / "flighthub2" / model_uuid).exists()


def test_archive_project_models_backfill_two_days(sandbox, archive_root):
    day1 = datetime(2026, 3, 1, tzinfo=timezone.utc)
    day2, day3 = day1 + timedelta(days=1), day1 + timedelta(days=2)
    hook = FlightHub2Hook()
    created = {}
    for label, when in [("d1a", day1 + timedelta(hours=1)), ("d1b", day2 - timedelta(seconds=1)),
                        ("d2", day2), ("d3", day3 + timedelta(hours=5)), ("d0", day1 - timedelta(seconds=1))]:
        sandbox.control.push_scenario("flighthub2", create_at=int(when.timestamp()), size=4096)
        created[label] = f"model-{hook.create_model(label, ['model_3d'], task_folder_id=1)}"
    dag = load_dag("flighthub2_archive_project_models")

    def run_day(day: datetime):
        """The run a backfill makes for ``day`` has the data interval [day, day + 1d). dag.test() makes a
        manual run, whose interval Airflow infers as the last complete day before its logical date."""
        run = dag.test(logical_date=day + timedelta(days=1), run_conf=FAST)
        assert (run.data_interval_start, run.data_interval_end) == (day, day + timedelta(days=1))
        return run

    run = run_day(day1)
    assert run.state == "success", task_states(run)
    assert archived_keys(archive_root) == {created["d1a"], created["d1b"]}
    labels = {ti.rendered_map_index for ti in run.get_task_instances() if ti.task_id == "download_and_archive"}
    assert labels == {f"file {created[k].split('-')[1]}" for k in ("d1a", "d1b")}  # not 0, 1, ...
    run = run_day(day2)
    assert run.state == "success", task_states(run)
    assert archived_keys(archive_root) == {created["d1a"], created["d1b"], created["d2"]}
    manifests = {key: archived(archive_root, key) for key in archived_keys(archive_root)}
    downloads = len(sandbox.control.requests(r"^/blobs/"))

    run = run_day(day1)  # the same day again
    assert run.state == "success", task_states(run)
    assert len(sandbox.control.requests(r"^/blobs/")) == downloads  # nothing downloaded twice
    assert {key: archived(archive_root, key) for key in archived_keys(archive_root)} == manifests
    manifest = manifests[created["d2"]]
    assert manifest["source"]["model_id"] == int(created["d2"].split("-")[1])
    assert manifest["source"]["file_id"] == created["d2"].split("-")[1]
    assert manifest["usage"] == {"model_type": {"value": "3d", "unit": "", "source": "provider"}}  # its file_type


def test_demo_runs_succeed_with_a_wall_clock_emulator(sandbox, archive_root):
    """What ``make demo`` triggers, against stages that advance with time (faster than the demo's 1-2 s)."""
    sandbox.control.configure(polls_per_stage=0, stage_seconds=0.2)
    for dag_id, conf in DEMO_RUNS:
        run = load_dag(dag_id).test(run_conf={**conf, "poll_interval": 0.1})
        assert run.state == "success", (dag_id, task_states(run))
    assert f"model-{DEMO_FILE_ID}" in archived_keys(archive_root)
    assert len(archived_keys(archive_root)) >= 4  # two reconstructed models, the demo file, the day's sweep
