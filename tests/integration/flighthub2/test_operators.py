"""Worker-side operators against the emulator: the upload resumes across retries, cleanup, listing."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from artifact_harvest.core.errors import InvalidParameterError
from artifact_harvest.flighthub2.hook import FlightHub2Hook
from artifact_harvest.flighthub2.operators import (
    UPLOAD_STATE,
    FlightHub2DeleteResourceOperator,
    FlightHub2ListModelsOperator,
    FlightHub2UploadPhotosOperator,
)
from tests.support import StateStore
from harvest_emulator.credentials import FLIGHTHUB2_TOKEN

PHOTOS = Path(__file__).resolve().parents[3] / "include" / "sample_data" / "flighthub2_photos"


def test_upload_retry_sends_only_the_missing_photos_to_the_same_resource(emulator_s3):
    """A 403 on one photo needs a bucket that can refuse one: the emulator's S3 (moto cannot be told to)."""
    emu = emulator_s3
    store = StateStore()
    operator = FlightHub2UploadPhotosOperator(task_id="upload", photos=str(PHOTOS), resource_name="r")
    emu.control.add_fault("/DJI_0003.png$", kind="status", status=403, times=1)
    with pytest.raises(Exception, match="403|Forbidden|AccessDenied"):
        operator.execute({"task_state_store": store})
    saved = store.values[UPLOAD_STATE]
    assert "DJI_0003.png" not in saved["etags"] and len(saved["etags"]) >= 1
    assert FLIGHTHUB2_TOKEN not in str(saved) and "secret" not in str(saved)  # no keys in the state store
    puts_before = len(emu.control.requests(r"^/s3/"))

    resource_uuid = operator.execute({"task_state_store": store})  # the retry
    assert resource_uuid == saved["target"]["resource_uuid"]
    assert len(emu.control.requests(r"^/s3/")) - puts_before == 5 - len(saved["etags"])
    assert FlightHub2Hook().resource(resource_uuid)["file_names"] == sorted(p.name for p in PHOTOS.iterdir())


def test_upload_from_an_object_storage_uri(emu):
    resource_uuid = FlightHub2UploadPhotosOperator(task_id="u", photos=PHOTOS.as_uri()).execute(
        {"task_state_store": StateStore()}
    )
    assert len(FlightHub2Hook().resource(resource_uuid)["file_names"]) == 5


def test_upload_needs_photos_or_a_resource(emu, tmp_path):
    assert FlightHub2UploadPhotosOperator(task_id="u", resource_uuid="r-9").execute({}) == "r-9"
    with pytest.raises(InvalidParameterError, match="holds no files"):
        FlightHub2UploadPhotosOperator(task_id="u", photos=str(tmp_path)).execute({"task_state_store": StateStore()})
    with pytest.raises(InvalidParameterError):
        FlightHub2UploadPhotosOperator(task_id="u").execute({"task_state_store": StateStore()})


def test_delete_resource_is_skipped_unless_enabled(emu):
    resource_uuid = FlightHub2UploadPhotosOperator(task_id="u", photos=str(PHOTOS)).execute(
        {"task_state_store": StateStore()}
    )
    with pytest.raises(AirflowSkipException):
        FlightHub2DeleteResourceOperator(task_id="d", resource_uuid=resource_uuid, enabled=False).execute({})
    assert FlightHub2Hook().resource(resource_uuid)["status"] == 1
    FlightHub2DeleteResourceOperator(task_id="d", resource_uuid=resource_uuid, enabled=True).execute({})
    assert FlightHub2Hook().resource(resource_uuid)["status"] == 3


def test_list_models_keeps_the_interval_and_skips_archived(emu, archive_root):
    hook = FlightHub2Hook()
    emu.control.push_scenario("flighthub2", create_at=1772323200)  # 2026-03-01T00:00:00Z: included
    inside = hook.create_model("in", ["model_3d"], task_folder_id=1)
    emu.control.push_scenario("flighthub2", create_at=1772409600)  # 2026-03-02T00:00:00Z: the next interval
    hook.create_model("out", ["model_3d"], task_folder_id=1)
    operator = FlightHub2ListModelsOperator(
        task_id="l", created_from="2026-03-01T00:00:00+00:00", created_to="2026-03-02T00:00:00+00:00"
    )
    [item] = operator.execute({})
    assert item["file_id"] == str(inside) and item["artifact_key"] == f"model-{inside}"
    assert item["source"]["model_id"] == inside and item["source"]["create_at"] == 1772323200
    folder = archive_root / "flighthub2" / f"model-{inside}"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    assert operator.execute({}) == []


def test_list_models_without_a_data_interval_takes_the_day_before_the_run(emu, archive_root):
    from datetime import datetime, timezone
    from types import SimpleNamespace

    run = SimpleNamespace(run_after=datetime.now(timezone.utc))
    operator = FlightHub2ListModelsOperator(task_id="l", created_from="None", created_to="None")
    items = operator.execute({"dag_run": run})
    assert [i["artifact_key"] for i in items] == ["model-1001"]  # seeded an hour ago; 1000 is a day old
