"""A whole pipeline with dag.test() into an s3:// archive on moto's server: bytes, manifest, re-run no-op."""

from __future__ import annotations

import hashlib
import json

import requests
from harvest_emulator.credentials import ARCHIVE_S3_SECRET
from harvest_emulator.object_store import ARCHIVE_BUCKET
from harvest_emulator.qianfan import SEEDED_EXPORT_ID, SEEDED_MODEL_ID

from artifact_harvest.qianfan.hook import QianfanHook
from tests.support import load_dag, task_states
from tests.integration.core.test_archive_s3 import body, keys, open_uploads

FAST = {"poll_interval": 0.05, "timeout": "PT30S"}


def test_qianfan_export_into_s3(airflow_db, emu, s3_archive, staging_dir, object_store):
    dag = load_dag("qianfan_export_model")
    run = dag.test(run_conf={"model_version_id": SEEDED_MODEL_ID, **FAST})
    assert run.state == "success", task_states(run)

    folder = f"archive/qianfan/{SEEDED_EXPORT_ID}"
    manifest = json.loads(body(object_store, f"{folder}/manifest.json"))
    data = body(object_store, f"{folder}/{manifest['filename']}")
    served = requests.get(QianfanHook().describe_export(SEEDED_MODEL_ID).download_url, timeout=10).content
    assert data == served and manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["md5"] == hashlib.md5(data).hexdigest() and manifest["size_bytes"] == len(data)
    assert manifest["path"] == f"s3://archive_s3@{ARCHIVE_BUCKET}/{folder}/{manifest['filename']}"
    assert keys(object_store) == sorted([f"{folder}/manifest.json", f"{folder}/{manifest['filename']}"])
    staged = [p for p in staging_dir.rglob("*") if p.is_file() and p.name != ".lock"]  # the key's lock file stays
    assert open_uploads(object_store) == [] and staged == []
    assert ARCHIVE_S3_SECRET not in json.dumps(manifest)

    downloads = len(emu.control.requests("^/blobs/"))
    again = dag.test(run_conf={"model_version_id": SEEDED_MODEL_ID, **FAST})
    assert again.state == "success", task_states(again)
    assert len(emu.control.requests("^/blobs/")) == downloads, "already archived: not downloaded again"
    assert json.loads(body(object_store, f"{folder}/manifest.json")) == manifest
