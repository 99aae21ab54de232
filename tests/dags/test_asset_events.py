"""Every archived artifact gives exactly one Asset event, mapped tasks included (counted in the metadata DB)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from harvest_emulator.flighthub2 import SAMPLE_PHOTOS
from tests.support import load_dag, task_states

FAST = {"poll_interval": 0.05, "timeout": "PT30S"}


def events_of(run) -> list[dict]:
    """The extras of the Asset events a run emitted, read back from the metadata DB."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri, AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_dag_id == run.dag_id, AssetEvent.source_run_id == run.run_id)
        ).all()
    return [{"uri": uri, **(extra or {})} for uri, extra in rows]


@pytest.fixture
def sandbox(airflow_db, emu, archive_root, staging_dir):
    return emu


def test_mapped_reconstruction_emits_one_event_per_model(sandbox, archive_root):
    run = load_dag("flighthub2_reconstruct_model").test(run_conf={"photos": SAMPLE_PHOTOS, "model_types": ["2d", "3d"], **FAST})
    assert run.state == "success", task_states(run)
    events = events_of(run)
    archived = {p.parent.name for p in (archive_root / "flighthub2").glob("*/manifest.json")}
    assert len(archived) == 2
    assert sorted(e["artifact_key"] for e in events) == sorted(archived)
    assert {e["uri"] for e in events} == {"x-artifact-harvest://flighthub2"}
    assert all(e["sha256"] and not e.get("already_archived") for e in events)


def test_mapped_sweep_emits_one_event_per_file_and_a_rerun_none(sandbox, archive_root):
    dag = load_dag("minimax_archive_new_files")
    now = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=1)
    run = dag.test(logical_date=now)
    assert run.state == "success", task_states(run)
    archived = {p.parent.name for p in (archive_root / "minimax").glob("*/manifest.json")}
    events = events_of(run)
    assert len(events) == len(archived) == 3
    assert {e["artifact_key"] for e in events} == archived

    # the same hour again: the sweep finds nothing new, maps no task and emits no event
    rerun = dag.test(logical_date=now + timedelta(seconds=1))
    assert rerun.state == "success", task_states(rerun)
    assert events_of(rerun) == []


def test_rerun_of_a_single_artifact_says_already_archived(sandbox, archive_root):
    """A plain (unmapped) download task re-run on an archived key: one event, marked ``already_archived``."""
    first = load_dag("flighthub2_reconstruct_model").test(run_conf={"photos": SAMPLE_PHOTOS, "model_types": ["3d"], **FAST})
    assert first.state == "success", task_states(first)
    [event] = events_of(first)
    dag = load_dag("flighthub2_download_model")
    again = dag.test(run_conf={"model_uuid": event["artifact_key"], **FAST})
    assert again.state == "success", task_states(again)
    [repeat] = events_of(again)
    assert repeat["already_archived"] is True and repeat["sha256"] == event["sha256"]
