"""A run's ``deadline`` with the real scheduler and triggerer (the shared ``airflow standalone``): a MiniMax video
whose job never finishes, triggered with ``deadline: PT5S``, is alerted (the triggerer's log line and the
webhook's JSON), listed by the SLA line of the Artifacts page (API and page), and the webhook's token is in no
log."""

from __future__ import annotations

import time

from tests.browser.conftest import WEBHOOK_TOKEN, login, nav_link, poll

DAG_ID = "minimax_generate_video"
ALERT_TIMEOUT = 180  # the run must be queued, create and defer its wait, then pass its 5 s and a scheduler loop


def _trigger(api, conf: dict) -> str:
    """POST the run with its own id (a SQLite "database is locked" 500 is retried; 409: the earlier try made it)."""
    run_id = f"deadline__{time.time_ns()}"

    def post() -> int:
        resp = api.request("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                           json={"dag_run_id": run_id, "logical_date": None, "conf": conf})
        assert resp.status_code in (200, 409, 500, 503), resp.text
        return resp.status_code

    poll(post, lambda status: status in (200, 409), 120)
    return run_id


def _logs(airflow_ui) -> str:
    """Everything Airflow wrote: the standalone's output (scheduler, triggerer, API server) and the task logs."""
    files = [airflow_ui.log, *(p for p in (airflow_ui.home / "logs").rglob("*") if p.is_file())]
    return "\n".join(p.read_text(errors="replace") for p in files if p.exists())


def test_a_run_still_waiting_past_its_deadline_is_alerted_and_listed(airflow_ui, emulator, browser_page):
    api = airflow_ui.api
    api.wait_for_dags([DAG_ID], timeout=180)
    poll(lambda: api.unpause(DAG_ID) or True, bool, 120)
    emulator.control.push_scenario("minimax", outcome="never")  # the next video job stays "Processing"
    run_id = _trigger(api, {"prompt": "a run that misses its deadline", "poll_interval": 1, "timeout": "PT15M",
                            "deadline": "PT5S"})
    try:
        post = airflow_ui.webhook.wait_for(lambda r: isinstance(r.body, dict) and r.body.get("run_id") == run_id,
                                           ALERT_TIMEOUT)
        body = post.body
        assert post.query == {"token": [WEBHOOK_TOKEN]}
        assert (body["event"], body["dag_id"], body["state"]) == ("deadline_missed", DAG_ID, "running")
        assert {"task": "wait", "state": "deferred"} in body["waiting"], body
        assert body["late_seconds"] >= 0

        line = poll(lambda: next((x for x in _logs(airflow_ui).splitlines()
                                  if f"Late run: DAG {DAG_ID} run {run_id}" in x), None), bool, 60)
        assert "past its deadline" in line and "wait (deferred)" in line and "late by" in line

        listed = api.json("GET", "/artifacts/api/late-runs")["late_runs"]
        [late] = [r for r in listed if r["run_id"] == run_id]
        assert late["dag_id"] == DAG_ID and late["alerted"] is True and late["late_seconds"] > 0
        assert late["deadline"] == body["deadline"]
        assert {"task": "wait", "state": "deferred"} in late["waiting"]
        assert api.json("GET", "/artifacts/api/late-runs", params={"run_id": "no-such-run"})["total"] == 0
        [row] = api.json("GET", f"/ui/dags/{DAG_ID}/dagRuns/{run_id}/deadlines")["deadlines"]  # Airflow's own view
        assert row["missed"] is True and row["deadline_time"].replace("Z", "+00:00") == body["deadline"]

        login(browser_page, airflow_ui)
        nav_link(browser_page, "Artifacts").click()
        frame = browser_page.frame_locator("iframe").first
        row = frame.locator(f'[data-testid="late-run"][data-run-id="{run_id}"]')
        row.wait_for()
        assert DAG_ID in row.inner_text() and "late" in row.inner_text() and "wait (deferred)" in row.inner_text()
        assert "waiting past" in frame.get_by_test_id("late-summary").inner_text()

        assert WEBHOOK_TOKEN not in _logs(airflow_ui)
    finally:
        api.request("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", json={"state": "failed"})
        emulator.control.reset()
    assert api.run(DAG_ID, run_id)["state"] == "failed"
    assert run_id not in {r["run_id"] for r in api.json("GET", "/artifacts/api/late-runs")["late_runs"]}

