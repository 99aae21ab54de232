"""The sweep's watermark on the real stack (scheduler, Celery worker, triggerer, PostgreSQL): an operator
sets it through Airflow's REST API to three days back, as if the sweep had been paused or down since; the
runs that follow (the scheduler's own run on unpause, if it makes one, then a run triggered without a logical
date) cover those three days on a Celery worker, archive each model once and move the watermark on."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from artifact_harvest.core.intervals import watermark_key
from artifact_harvest.flighthub2.hook import FlightHub2Hook

pytestmark = pytest.mark.distributed

DAG_ID = "flighthub2_archive_project_models"
ASSET_NAME = "artifact_harvest/flighthub2"


def poll(what: str, predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.5)
    return value


def state_path(api) -> str:
    [asset] = [a for a in api.json("GET", "/api/v2/assets", params={"name_pattern": ASSET_NAME})["assets"]
               if a["name"] == ASSET_NAME]
    return f"/api/v2/assets/{asset['id']}/state-store/{watermark_key(DAG_ID)}"


def test_runs_on_the_stack_cover_the_days_since_the_watermark_set_through_rest(stack):
    api, control = stack.api, stack.emulator.control
    control.reset()
    control.configure(polls_per_stage=0, stage_seconds=0.5)
    api.wait_for_dags([DAG_ID], timeout=120)
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    hook, keys = FlightHub2Hook(), {}
    for label, when in {"before": today - timedelta(days=3, minutes=1), "gap1": today - timedelta(days=3),
                        "gap2": today - timedelta(days=2, hours=-5), "gap3": today - timedelta(hours=20)}.items():
        control.push_scenario("flighthub2", create_at=int(when.timestamp()), size=4096)
        keys[label] = f"model-{hook.create_model(label, ['model_3d'], task_folder_id=1)}"
    try:
        path = state_path(api)
        set_at = datetime.now(timezone.utc)
        resp = api.request("PUT", path, json={"value": (today - timedelta(days=3)).isoformat()})
        assert resp.status_code == 204, resp.text
        known = {r["dag_run_id"] for r in api.runs(DAG_ID)}
        api.unpause(DAG_ID)
        manual = api.trigger(DAG_ID, {"poll_interval": 0.5})

        def finished() -> list[dict] | None:
            runs = [r for r in api.runs(DAG_ID) if r["dag_run_id"] not in known]
            return runs if runs and all(r["state"] in ("success", "failed") for r in runs) else None

        runs = poll("the runs after the watermark was set", finished, timeout=420)
        assert {r["state"] for r in runs} == {"success"}, runs
        assert manual in {r["dag_run_id"] for r in runs}

        folder = stack.archive / "flighthub2"
        archived = {k: json.loads((folder / k / "manifest.json").read_text())
                    for k in keys.values() if (folder / k / "manifest.json").exists()}
        assert set(archived) == {keys["gap1"], keys["gap2"], keys["gap3"]}, "the three days, not before them"
        for label in ("gap1", "gap2", "gap3"):
            fetched = [r for r in control.requests(f"/{keys[label]}\\.zip$") if r["method"] == "GET"]
            assert len(fetched) == 1, (label, fetched)  # each model downloaded once over every run

        entry = api.json("GET", path)
        assert datetime.fromisoformat(entry["value"]) >= set_at - timedelta(days=1), entry
        assert entry["last_updated_by"]["task_id"] == "advance_watermark"
        first = min(runs, key=lambda r: r["start_date"])
        xcom = api.json("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{first['dag_run_id']}/taskInstances/sweep_window"
                               "/xcomEntries/return_value")
        window = json.loads(xcom["value"]) if isinstance(xcom["value"], str) else xcom["value"]
        assert datetime.fromisoformat(window["start"]) == today - timedelta(days=3), window
    finally:
        api.json("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": True})
        api.request("DELETE", state_path(api))
        control.reset()
