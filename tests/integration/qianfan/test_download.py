"""The download operator against the emulator: fresh URLs from Describe, resume, refusal of other exports."""

from __future__ import annotations

import hashlib
import json

import requests

from artifact_harvest.qianfan.hook import QianfanHook
from artifact_harvest.qianfan.operators import QianfanDownloadExportOperator
from harvest_emulator.qianfan import SEEDED_EXPORT_ID, SEEDED_MODEL_ID


def describes(emu) -> int:
    return sum(r["query"].get("Action") == "DescribeModelExportTask" for r in emu.control.requests("/v2/model"))


def download(model_id: str, export_id: str) -> dict:
    return QianfanDownloadExportOperator(task_id="dl", model_id=model_id, export_id=export_id).execute({})


def test_expired_url_and_dropped_connection_are_survived(emu, archive_root, staging_dir):
    expected = requests.get(QianfanHook().describe_export(SEEDED_MODEL_ID).download_url, timeout=10).content
    emu.control.clear_requests()
    emu.control.add_fault("/blobs/", "drop", after_bytes=100_000)
    emu.control.add_fault("/blobs/", "expire")
    manifest = download(SEEDED_MODEL_ID, SEEDED_EXPORT_ID)
    assert manifest["md5"] == hashlib.md5(expected).hexdigest() and manifest["size_bytes"] == len(expected)
    assert (archive_root / "qianfan" / SEEDED_EXPORT_ID / manifest["filename"]).read_bytes() == expected
    assert {fault["kind"] for fault in emu.control.faults()["applied"]} == {"drop", "expire"}
    assert describes(emu) >= 2  # the expired URL was replaced by a fresh Describe
    assert "Signature" not in json.dumps(manifest)


def test_an_export_replaced_by_a_newer_done_one_archives_the_newer_under_its_own_id(emu, archive_root, staging_dir):
    """Describe lists only the newest export of a version: the one awaited was replaced (another run's
    force_new_export), so the newer Done one is archived under its own id, never under the awaited id."""
    manifest = download(SEEDED_MODEL_ID, "amve-replaced")
    assert manifest["source"] == {"modelId": SEEDED_MODEL_ID, "exportId": SEEDED_EXPORT_ID,
                                  "replacesExportId": "amve-replaced"}
    assert (archive_root / "qianfan" / SEEDED_EXPORT_ID / "manifest.json").exists()
    assert not (archive_root / "qianfan" / "amve-replaced").exists()
