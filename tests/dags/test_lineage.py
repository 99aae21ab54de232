"""OpenLineage through Airflow itself: dag.test() with the openlineage listener on and the file transport, then
the emitted events read back. The suite keeps the listener off (tests/conftest.py); the fixture turns it on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harvest_emulator.credentials import SECRETS
from harvest_emulator.flighthub2 import SAMPLE_PHOTOS
from harvest_emulator.minimax import SEED_SPEECH_FILE_ID
from tests.support import load_dag, task_states

FAST = {"poll_interval": 0.05, "timeout": "PT30S"}


@pytest.fixture
def lineage_events(tmp_path, monkeypatch):
    """The listener registered in this process, writing one JSON event per line; yields a reader of them.

    ``execute_in_thread``: the listener's default forks the task process, which a pytest process (emulator and
    S3 server threads) must not do; the thread is joined before the task finishes, so the events are written
    when dag.test() returns."""
    log = tmp_path / "openlineage.jsonl"
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT",
                       json.dumps({"type": "file", "log_file_path": str(log), "append": True}))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD", "True")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "artifact-harvest-tests")
    from airflow.providers.openlineage.plugins.listener import OpenLineageListener
    from airflow.sdk.listener import get_listener_manager

    # a listener of its own: the provider's singleton keeps the first transport it built (another test's file)
    manager, listener = get_listener_manager(), OpenLineageListener()
    manager.add_listener(listener)
    try:
        yield lambda: [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    finally:
        manager.pm.unregister(listener)


@pytest.fixture
def sandbox(airflow_db, emu, archive_root, staging_dir):
    return emu


def completed(events: list[dict], dag_id: str, task_id: str) -> list[dict]:
    return [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"{dag_id}.{task_id}"]


def assert_no_secret(events: list[dict]) -> None:
    """No credential and no signed download URL anywhere; no query string in a dataset (Airflow's own log_url
    in the run facet has one)."""
    text = json.dumps(events)
    assert not [s for s in SECRETS if s in text], "a credential in the OpenLineage events"
    for signed in ("Signature=", "Expires=", "X-Amz-", "/blobs/"):
        assert signed not in text, signed
    datasets = json.dumps([d for e in events for d in e.get("inputs", []) + e.get("outputs", [])])
    assert datasets != "[]" and "?" not in datasets


def manifest(archive_root: Path, provider: str, key: str) -> dict:
    return json.loads((archive_root / provider / key / "manifest.json").read_text())


def test_an_archived_file_is_the_output_dataset_of_its_download(sandbox, archive_root, lineage_events):
    dag = load_dag("minimax_archive_file")
    run = dag.test(run_conf={"file_id": SEED_SPEECH_FILE_ID})
    assert run.state == "success", task_states(run)
    key = str(SEED_SPEECH_FILE_ID)
    written = manifest(archive_root, "minimax", key)
    events = lineage_events()
    [done] = completed(events, "minimax_archive_file", "download_and_archive")
    [out] = done["outputs"]
    assert (out["namespace"], out["name"]) == (archive_root.as_uri(), f"minimax/{key}")
    facets = out["facets"]
    assert facets["version"]["datasetVersion"] == written["sha256"]
    artifact = facets["artifactHarvest_artifact"]
    assert (artifact["sizeBytes"], artifact["sha256"], artifact.get("md5"), artifact["filename"]) == (
        written["size_bytes"], written["sha256"], written["md5"], written["filename"])
    assert artifact["alreadyArchived"] is False
    assert facets["artifactHarvest_source"] == {**facets["artifactHarvest_source"], "provider": "minimax",
                                                "ids": {"file_id": key}}
    assert facets["symlinks"]["identifiers"][0]["name"] == written["path"].removeprefix("file:///")
    assert out["outputFacets"]["outputStatistics"]["size"] == written["size_bytes"]
    assert done["inputs"] == []
    assert_no_secret(events)

    # the same file again: found archived, so the same dataset, flagged, and nothing written this time
    assert dag.test(run_conf={"file_id": SEED_SPEECH_FILE_ID}).state == "success"
    [again] = completed(lineage_events(), "minimax_archive_file", "download_and_archive")[1:]
    [out] = again["outputs"]
    assert (out["namespace"], out["name"]) == (archive_root.as_uri(), f"minimax/{key}")
    assert out["facets"]["artifactHarvest_artifact"]["alreadyArchived"] is True
    assert "outputStatistics" not in out.get("outputFacets", {})


def test_a_reconstruction_links_the_photos_to_its_models(sandbox, archive_root, lineage_events):
    run = load_dag("flighthub2_reconstruct_model").test(
        run_conf={"photos": SAMPLE_PHOTOS, "model_types": ["2d", "3d"], **FAST})
    assert run.state == "success", task_states(run)
    events = lineage_events()
    [upload] = completed(events, "flighthub2_reconstruct_model", "upload_photos")
    photos = Path(SAMPLE_PHOTOS).resolve()
    [photos_in] = upload["inputs"]
    assert (photos_in["namespace"], photos_in["name"]) == ("file://", str(photos).lstrip("/"))
    count = len([p for p in photos.iterdir() if p.is_file() and not p.name.startswith(".")])
    assert photos_in["inputFacets"]["inputStatistics"]["fileCount"] == count
    [resource] = upload["outputs"]
    resource_uuid = run.get_task_instance("upload_photos").xcom_pull(task_ids="upload_photos")
    assert (resource["namespace"], resource["name"]) == ("flighthub2", f"resource/{resource_uuid}")

    downloads = completed(events, "flighthub2_reconstruct_model", "download_and_archive")
    jobs = {job["job_id"]: job for job in sandbox.control.jobs("flighthub2")}
    assert len(downloads) == len(jobs) == 2
    for done in downloads:
        assert [(i["namespace"], i["name"]) for i in done["inputs"]] == [("flighthub2", f"resource/{resource_uuid}")]
        [out] = done["outputs"]
        model_uuid = out["name"].removeprefix("flighthub2/")
        assert out["namespace"] == archive_root.as_uri() and model_uuid in jobs
        written = manifest(archive_root, "flighthub2", model_uuid)
        assert out["facets"]["artifactHarvest_artifact"]["sha256"] == written["sha256"]
        assert out["facets"]["artifactHarvest_source"]["ids"] == {
            "model_uuid": model_uuid, "file_id": jobs[model_uuid]["data"]["blob_id"], "resource_uuid": resource_uuid}
    assert_no_secret(events)
