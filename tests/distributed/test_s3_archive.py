"""An artifact archived into a real S3 API through the Celery worker: the archive root of the shared stack's
workers is s3:// on moto's server for this module (started in this process on 127.0.0.1; the workers get the aws
connection and the Variables through their environment), and a Qianfan export goes up as a multipart upload."""

from __future__ import annotations

import hashlib
import json

import pytest
from harvest_emulator.credentials import ARCHIVE_S3_SECRET, archive_s3_env
from harvest_emulator.object_store import ARCHIVE_BUCKET

pytestmark = pytest.mark.distributed

MiB = 1 << 20
ROOT_PREFIX = "distributed"


@pytest.fixture(scope="module")
def stack(stack, object_store):
    """The shared stack whose workers archive into s3:// (elsewhere it archives locally), from a staging dir of
    this module's own; the worker restarted with these settings now, and without them afterwards."""
    object_store.create_bucket(ARCHIVE_BUCKET)
    staging = stack.workdir / "staging-s3"
    staging.mkdir()
    extra = {**archive_s3_env(object_store.url, f"s3://{ARCHIVE_BUCKET}/{ROOT_PREFIX}"),
             "AIRFLOW__ARTIFACT_HARVEST__ARCHIVE_PART_SIZE_MIB": "5", "AIRFLOW_VAR_ARTIFACT_STAGING_DIR": str(staging)}
    with stack.configured(extra, restart=("celery-worker",)):
        yield stack


def test_qianfan_export_archived_into_s3_by_the_celery_worker(stack, object_store):
    stack.emulator.control.reset()
    stack.emulator.control.configure(polls_per_stage=0, stage_seconds=1)
    stack.emulator.control.push_scenario("qianfan", size=12 * MiB)
    stack.api.wait_for_dags(["qianfan_export_model"], timeout=120)
    stack.api.unpause("qianfan_export_model")
    run_id = stack.api.trigger("qianfan_export_model",
                               {"model_version_id": "amv-dists3", "poll_interval": 0.5, "timeout": "PT2M"})
    try:
        assert stack.api.wait_for_run("qianfan_export_model", run_id, timeout=300) == "success", stack.dump_logs()
    finally:
        stack.emulator.control.reset()

    client = object_store.client()
    listing = client.list_objects_v2(Bucket=ARCHIVE_BUCKET, Prefix=f"{ROOT_PREFIX}/qianfan/")["Contents"]
    manifests = [o["Key"] for o in listing if o["Key"].endswith("/manifest.json")]
    assert len(manifests) == 1 and len(listing) == 2, [o["Key"] for o in listing]
    manifest = json.loads(client.get_object(Bucket=ARCHIVE_BUCKET, Key=manifests[0])["Body"].read())
    data_key = manifests[0].rsplit("/", 1)[0] + "/" + manifest["filename"]
    head = client.head_object(Bucket=ARCHIVE_BUCKET, Key=data_key)
    data = client.get_object(Bucket=ARCHIVE_BUCKET, Key=data_key)["Body"].read()
    assert hashlib.sha256(data).hexdigest() == manifest["sha256"] and len(data) == manifest["size_bytes"] > 10 * MiB
    assert head["ETag"].strip('"').endswith("-3"), "uploaded in three 5 MiB parts"
    assert manifest["run_id"] == run_id and manifest["path"].startswith("s3://")
    assert client.list_multipart_uploads(Bucket=ARCHIVE_BUCKET).get("Uploads", []) == []
    logs = "\n".join(p.read_text(errors="replace") for p in stack.home.rglob("*.log"))
    assert "verified s3://" in logs and ARCHIVE_S3_SECRET not in logs
    staged = [p for p in stack.staging.rglob("*") if p.is_file() and p.name != ".lock"]  # the key's lock stays
    assert staged == [], "the staging copy is gone"


def test_two_hosts_race_for_one_export_into_s3(stack, object_store):
    """Two workers with their own staging dirs, one S3 archive: the lease (a conditional PUT in the bucket)
    lets one download; the other waits, then finds the archive (``test_one_writer.race_two_hosts``)."""
    from tests.distributed.test_one_writer import race_two_hosts

    client = object_store.client()

    def archived(export_id: str) -> dict:
        prefix = f"{ROOT_PREFIX}/qianfan/{export_id}/"
        names = sorted(o["Key"][len(prefix):] for o in
                       client.list_objects_v2(Bucket=ARCHIVE_BUCKET, Prefix=prefix).get("Contents", []))
        manifest = json.loads(client.get_object(Bucket=ARCHIVE_BUCKET, Key=prefix + "manifest.json")["Body"].read())
        assert names == sorted(["manifest.json", manifest["filename"]]), names  # no lease left
        data = client.get_object(Bucket=ARCHIVE_BUCKET, Key=prefix + manifest["filename"])["Body"].read()
        assert hashlib.sha256(data).hexdigest() == manifest["sha256"] and len(data) == manifest["size_bytes"]
        assert client.list_multipart_uploads(Bucket=ARCHIVE_BUCKET).get("Uploads", []) == []
        return manifest

    race_two_hosts(stack, archived)
