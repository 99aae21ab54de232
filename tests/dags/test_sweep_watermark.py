"""Sweeps never skip: a sweep paused for three days (or whose run failed) archives those days on its next run,
and nothing twice. The daily FlightHub 2 sweep runs through dag.test() against the emulator.

Why dag.test() is faithful here: what a run covers depends only on its data interval, its run type and the
watermark in Airflow's asset state store (``core.intervals``), which dag.test() reads and writes through the
same task SDK calls as a worker. dag.test() makes manual runs with a logical date, which widen and advance the
watermark exactly as scheduled runs do (only backfills do not, see the unit tests below). What the scheduler
adds after a pause with ``catchup=False`` is one run for the latest interval; the test makes that run.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from artifact_harvest.core.intervals import BACKFILL, watermark_key, widen
from artifact_harvest.flighthub2.hook import FlightHub2Hook
from tests.support import load_dag, task_states

DAG_ID = "flighthub2_archive_project_models"
FAST = {"poll_interval": 0.05}
DAY1 = datetime(2026, 6, 1, tzinfo=timezone.utc)


def day(n: int) -> datetime:
    return DAY1 + timedelta(days=n - 1)


def watermark() -> str | None:
    from airflow.models.asset_state_store import AssetStateStoreModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(select(AssetStateStoreModel.value).where(
            AssetStateStoreModel.key == watermark_key(DAG_ID)))
    return json.loads(value) if value is not None else None


def clear_watermark() -> None:
    from airflow.models.asset_state_store import AssetStateStoreModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        session.execute(delete(AssetStateStoreModel).where(AssetStateStoreModel.key == watermark_key(DAG_ID)))


@pytest.fixture
def sandbox(airflow_db, emu, archive_root, staging_dir):
    """The emulator, and no watermark left by another test of this DAG (the session shares one DB)."""
    clear_watermark()
    yield emu
    clear_watermark()


def create_models(emu, days: dict[str, datetime]) -> dict[str, str]:
    """``{label: artifact key}``: one 3D model per label, created at the given time."""
    hook, keys = FlightHub2Hook(), {}
    for label, when in days.items():
        emu.control.push_scenario("flighthub2", create_at=int(when.timestamp()), size=4096)
        keys[label] = f"model-{hook.create_model(label, ['model_3d'], task_folder_id=1)}"
    return keys


def archived(archive_root: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in (archive_root / "flighthub2").glob("*/manifest.json")}


def downloads(emu) -> int:
    return len([r for r in emu.control.requests(r"^/blobs/") if r["method"] == "GET"])


def run_covering(n: int):
    """The run for day ``n``: data interval [day n, day n+1), as the scheduler makes it at day n+1 00:00."""
    run = load_dag(DAG_ID).test(logical_date=day(n + 1), run_conf=FAST)
    assert (run.data_interval_start, run.data_interval_end) == (day(n), day(n + 1))
    return run


def window_of(run) -> tuple[datetime, datetime]:
    [ti] = [ti for ti in run.get_task_instances() if ti.task_id == "sweep_window"]
    value = ti.xcom_pull(task_ids="sweep_window")
    return datetime.fromisoformat(value["start"]), datetime.fromisoformat(value["end"])


def test_a_sweep_paused_for_three_days_archives_them_on_resume_and_nothing_twice(sandbox, archive_root):
    keys = create_models(sandbox, {
        "before": day(1) - timedelta(seconds=1), "d1": day(1) + timedelta(hours=9),
        "d2": day(2) + timedelta(hours=1), "d3": day(3) + timedelta(hours=12), "d4": day(5) - timedelta(seconds=1),
        "d5": day(5), "later": day(6) + timedelta(hours=1),
    })

    first = run_covering(1)
    assert first.state == "success", task_states(first)
    assert window_of(first) == (day(1), day(2)), "no watermark yet: exactly the data interval"
    assert set(archived(archive_root)) == {keys["d1"]}
    assert watermark() == day(2).isoformat()
    before = downloads(sandbox)

    # paused on days 2, 3 and 4: no runs. Unpaused on day 6, the scheduler (catchup=False) makes the run for day 5
    resumed = run_covering(5)
    assert resumed.state == "success", task_states(resumed)
    assert window_of(resumed) == (day(2), day(6)), "reaches back to the end of the last run that succeeded"
    stored = archived(archive_root)
    assert set(stored) == {keys[k] for k in ("d1", "d2", "d3", "d4", "d5")}, "every paused day, and day 5"
    assert downloads(sandbox) - before == 4, "each new model downloaded once"
    assert watermark() == day(6).isoformat()
    assert all(m["run_id"] == resumed.run_id for k, m in stored.items() if k != keys["d1"])

    again = run_covering(5)  # the same run cleared and run again
    assert again.state == "success", task_states(again)
    assert archived(archive_root) == stored and downloads(sandbox) - before == 4, "nothing archived twice"
    assert watermark() == day(6).isoformat()


def test_a_failed_run_leaves_the_watermark_so_the_next_run_covers_its_day(sandbox, archive_root):
    keys = create_models(sandbox, {"d1": day(1) + timedelta(hours=1), "d2": day(2) + timedelta(hours=2),
                                   "d3": day(3) + timedelta(hours=3)})
    assert run_covering(1).state == "success"
    sandbox.control.add_fault(route="/openapi/v0.1/model$", method="GET", kind="status", status=403, times=-1)
    failed = run_covering(2)
    assert failed.state == "failed" and task_states(failed)["advance_watermark"] != "success", task_states(failed)
    assert watermark() == day(2).isoformat() and set(archived(archive_root)) == {keys["d1"]}

    sandbox.control.clear_faults()
    run = run_covering(3)
    assert run.state == "success", task_states(run)
    assert window_of(run) == (day(2), day(4))
    assert set(archived(archive_root)) == set(keys.values()) and watermark() == day(4).isoformat()


@pytest.mark.parametrize(("covered", "run_type", "expected"), [
    (None, "scheduled", (day(5), day(6))),        # first run ever: its interval
    (day(2), "scheduled", (day(2), day(6))),      # after a gap: back to the watermark
    (day(2), "manual", (day(2), day(6))),         # a manual run too
    (day(2), BACKFILL, (day(5), day(6))),         # a backfill: exactly its interval
    (day(9), "scheduled", (day(5), day(6))),      # an older interval re-run: never narrower than its own
    (day(5), "scheduled", (day(5), day(6))),      # no gap
])
def test_widen(covered, run_type, expected):
    assert widen(day(5), day(6), covered, run_type) == expected
