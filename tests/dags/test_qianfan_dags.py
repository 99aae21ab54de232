"""qianfan_export_model end to end with dag.test() against the emulator: bytes, manifest, reuse, failures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import requests

from artifact_harvest.qianfan.hook import QianfanHook
from tests.support import archived_files, load_dag, task_states
from harvest_emulator.credentials import QIANFAN_AK, QIANFAN_SK
from harvest_emulator.qianfan import DEMO_RUNS, SEEDED_EXPORT_ID, SEEDED_MODEL_ID

FAST = {"poll_interval": 0.05, "timeout": "PT30S"}


@pytest.fixture(scope="module")
def dag():
    return load_dag("qianfan_export_model")


@pytest.fixture
def sandbox(airflow_db, emu, archive_root, staging_dir):
    return emu


def archived(archive_root: Path, export_id: str) -> tuple[dict, bytes]:
    folder = archive_root / "qianfan" / export_id
    manifest = json.loads((folder / "manifest.json").read_text())
    return manifest, (folder / manifest["filename"]).read_bytes()


def served_bytes(model_id: str) -> bytes:
    """What the emulator serves for the version's export, fetched independently of the pipeline."""
    return requests.get(QianfanHook().describe_export(model_id).download_url, timeout=10).content


def assert_clean(manifest: dict) -> None:
    text = json.dumps(manifest)
    assert "Signature=" not in text and "Expires=" not in text
    assert QIANFAN_AK not in text and QIANFAN_SK not in text


def test_new_export_end_to_end(sandbox, dag, archive_root):
    run = dag.test(run_conf={"model_version_id": "amv-e2e1", **FAST})
    assert run.state == "success", task_states(run)
    [job] = sandbox.control.jobs("qianfan")[-1:]
    export_id = job["job_id"]
    manifest, data = archived(archive_root, export_id)
    assert manifest["provider"] == "qianfan" and manifest["artifact_key"] == export_id
    assert manifest["source"] == {"modelId": "amv-e2e1", "exportId": export_id}
    assert data == served_bytes("amv-e2e1")
    assert manifest["md5"] == hashlib.md5(data).hexdigest() == job["data"]["md5"]
    assert manifest["size_bytes"] == len(data) and manifest["filename"].endswith(".tar")
    # Describe's fileSize (the emulator reports the file's real size)
    assert manifest["usage"] == {"export_size": {"value": len(data), "unit": "bytes", "source": "provider"}}
    assert_clean(manifest)


def test_seeded_done_export_is_reused(sandbox, dag, archive_root):
    run = dag.test(run_conf={"model_version_id": SEEDED_MODEL_ID, **FAST})
    assert run.state == "success", task_states(run)
    manifest, data = archived(archive_root, SEEDED_EXPORT_ID)
    assert hashlib.md5(data).hexdigest() == manifest["md5"]
    assert not any(r["query"].get("Action") == "CreateModelExportTask" for r in sandbox.control.requests("/v2/model"))


def test_failed_export_fails_the_run_and_archives_nothing(sandbox, dag, archive_root):
    sandbox.control.push_scenario("qianfan", outcome="fail")
    run = dag.test(run_conf={"model_version_id": "amv-e2e2", **FAST})
    assert run.state == "failed"
    assert task_states(run)["wait_for_export"] == "failed" and task_states(run)["download_and_archive"] != "success"
    assert archived_files(archive_root) == []


def test_wrong_md5_is_never_archived(sandbox, dag, archive_root, monkeypatch):
    # a checksum mismatch is retryable (bytes can be damaged in transit); the test needs no 30 s retry delays
    monkeypatch.setattr(dag.get_task("download_and_archive"), "retries", 0)
    sandbox.control.push_scenario("qianfan", outcome="wrong_md5", state_field="state", case="lower")
    run = dag.test(run_conf={"model_version_id": "amv-e2e3", **FAST})
    assert run.state == "failed"
    assert task_states(run)["wait_for_export"] == "success" and task_states(run)["download_and_archive"] == "failed"
    assert archived_files(archive_root) == []


@pytest.mark.parametrize(("dag_id", "conf"), DEMO_RUNS, ids=[conf["model_version_id"] for _, conf in DEMO_RUNS])
def test_demo_runs_succeed_on_a_wall_clock(sandbox, dag, archive_root, dag_id, conf):
    """As in make demo: stages advance with time (here 0.2 s), not with polls."""
    sandbox.control.configure(polls_per_stage=0, stage_seconds=0.2)
    assert dag_id == dag.dag_id
    run = dag.test(run_conf={**conf, "poll_interval": 0.1})
    assert run.state == "success", task_states(run)
    [manifest] = [json.loads(p.read_text()) for p in archive_root.rglob("manifest.json")]
    assert manifest["source"]["modelId"] == conf["model_version_id"]


@pytest.mark.parametrize("bad", ["amv-", "AMV-abc", "amve-abc", "amv-abc/../x", "model-1"])
def test_model_version_id_is_validated_before_the_run(dag, bad):
    from airflow.sdk.exceptions import ParamValidationError

    param = dag.params.get_param("model_version_id")
    assert param.resolve("amv-g73j3faikzpz") == "amv-g73j3faikzpz"
    with pytest.raises(ParamValidationError):
        param.resolve(bad)
