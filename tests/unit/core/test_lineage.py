"""core.lineage: dataset identities, facets and the operators' lineage method, without running a DAG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from artifact_harvest.core.lineage import (
    ArchiveLineageMixin,
    DatasetRef,
    archived_dataset,
    clean_uri,
    location,
    source_ids,
)

ROOT = Path(__file__).resolve().parents[3]
MANIFEST = {
    "provider": "qianfan", "artifact_key": "exp-1", "filename": "model.tar", "size_bytes": 42,
    "sha256": "ab" * 32, "md5": "cd" * 16, "archived_at": "2026-01-02T03:04:05+00:00",
    "source": {"modelId": "amv-1", "exportId": "exp-1", "note": "not an id"},
    "dag_id": "qianfan_export_model", "run_id": "manual__1", "path": "s3://bucket/archive/qianfan/exp-1/model.tar",
}


class TI:
    dag_id, run_id = "qianfan_export_model", "manual__1"


class Download(ArchiveLineageMixin):
    lineage_source_keys = ("modelId", "exportId", "replacesExportId")


def as_json(lineage) -> dict:
    from openlineage.client.serde import Serde

    return {side: [json.loads(Serde.to_json(d)) for d in getattr(lineage, side)] for side in ("inputs", "outputs")}


def test_locations_lose_credentials_query_and_fragment():
    assert clean_uri("s3://key:secret@bucket:9000/pre/fix?X-Amz-Signature=abc#frag") == "s3://bucket:9000/pre/fix"
    assert clean_uri("/tmp/../tmp/photos") == "file:///tmp/photos"
    assert location("s3://k:s@bucket/photos/day1?token=x", 12) == DatasetRef("s3://bucket", "photos/day1", 12)


def test_the_archived_artifact_is_named_by_the_archive_root_and_its_key():
    assert archived_dataset(MANIFEST) == DatasetRef("s3://bucket/archive", "qianfan/exp-1", 1)
    local = {**MANIFEST, "path": "file:///srv/archive/minimax/316/out.mp4"}
    assert archived_dataset(local) == DatasetRef("file:///srv/archive", "minimax/316", 1)


def test_source_ids_are_the_named_keys_that_are_set():
    keys = ("modelId", "exportId", "replacesExportId")
    assert source_ids(MANIFEST, keys) == {"modelId": "amv-1", "exportId": "exp-1"}
    assert source_ids({"source": {"file_id": 316}}, ("file_id", "task_id")) == {"file_id": "316"}


def test_the_output_dataset_carries_size_digests_and_source_ids():
    op = Download()
    op.archived_manifest = MANIFEST
    [out] = as_json(op.get_openlineage_facets_on_complete(TI()))["outputs"]
    assert (out["namespace"], out["name"]) == ("s3://bucket/archive", "qianfan/exp-1")
    facets = out["facets"]
    assert facets["version"]["datasetVersion"] == MANIFEST["sha256"]
    assert facets["symlinks"]["identifiers"] == [
        {"namespace": "s3://bucket", "name": "archive/qianfan/exp-1/model.tar", "type": "file"}]
    artifact = facets["artifactHarvest_artifact"]
    assert {k: artifact[k] for k in ("filename", "sizeBytes", "sha256", "md5", "alreadyArchived")} == {
        "filename": "model.tar", "sizeBytes": 42, "sha256": MANIFEST["sha256"], "md5": MANIFEST["md5"],
        "alreadyArchived": False}
    assert artifact["_schemaURL"] and artifact["_producer"]
    assert facets["artifactHarvest_source"]["ids"] == {"modelId": "amv-1", "exportId": "exp-1"}
    assert facets["artifactHarvest_source"]["provider"] == "qianfan"
    assert out["outputFacets"]["outputStatistics"] == {
        **out["outputFacets"]["outputStatistics"], "size": 42, "fileCount": 1}


def test_another_run_found_it_archived_and_wrote_nothing():
    op = Download()
    op.archived_manifest = {**MANIFEST, "run_id": "scheduled__0"}
    [out] = as_json(op.get_openlineage_facets_on_complete(TI()))["outputs"]
    assert out["facets"]["artifactHarvest_artifact"]["alreadyArchived"] is True
    assert "outputStatistics" not in out.get("outputFacets", {})


def test_nothing_archived_gives_empty_lineage():
    lineage = Download().get_openlineage_facets_on_complete(TI())
    assert lineage.inputs == [] and lineage.outputs == []


def test_the_package_works_without_the_openlineage_provider():
    """Operators import, and the lineage module loads, with the OpenLineage client made unimportable (as when
    the provider is absent) and nothing of the provider's lineage code imported."""
    code = (
        "import sys\n"
        "sys.modules['openlineage'] = None\n"
        "import artifact_harvest.core.operators, artifact_harvest.flighthub2.operators\n"
        "import artifact_harvest.minimax.operators, artifact_harvest.qianfan.operators\n"
        "from artifact_harvest.core.lineage import location\n"
        "assert not any(m.startswith('airflow.providers.openlineage.extractors') for m in sys.modules)\n"
        "print(location('s3://b/p').namespace)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "include")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "s3://b"


def test_the_listener_is_off_in_the_suite_unless_a_test_turns_it_on():
    from airflow.providers.openlineage import conf

    assert conf.is_disabled()
