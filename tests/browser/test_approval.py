"""Paid work waits for a person, in a real browser against a real Airflow: a MiniMax video run with
``require_approval`` appears under Browse → Required Actions, its review panel shows what will be sent and what
it uses, and Reject sends nothing to the emulator while Approve sends the video once and the run succeeds.

The panel of the rejected run is kept as ``docs/approval.png``.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import ROOT, login, poll

DAG_ID = "minimax_generate_video"
DOCS_SCREENSHOT = ROOT / "docs" / "approval.png"


@pytest.fixture(scope="module")
def ui(airflow_ui):
    airflow_ui.api.wait_for_dags([DAG_ID], timeout=180)
    poll(lambda: airflow_ui.api.unpause(DAG_ID) or True, bool, 120)
    return airflow_ui


def creates(emulator) -> list[dict]:
    """The video creates the emulator received (POST /v1/video_generation; the query is a GET elsewhere)."""
    return [r for r in emulator.control.requests(r"^/v1/video_generation$") if r["method"] == "POST"]


def jobs_for(emulator, prompt: str) -> list[dict]:
    return [job for job in emulator.control.jobs("minimax") if job["data"].get("body", {}).get("prompt") == prompt]


def states(ui, run_id: str) -> dict[str, str]:
    return {ti["task_id"]: ti["state"] for ti in ui.api.task_instances(DAG_ID, run_id)}


def trigger_awaiting_approval(ui, prompt: str) -> str:
    """A run with ``require_approval``, once its approve task awaits input (nothing sent yet)."""
    conf = {"prompt": prompt, "model": "T2V-01", "require_approval": True, "poll_interval": 0.2}
    run_id = poll(lambda: ui.api.trigger(DAG_ID, conf), bool, 120)
    poll(lambda: states(ui, run_id).get("approve"), lambda state: state == "awaiting_input", 240)
    return run_id


def open_review_panel(page, ui, run_id: str):
    """Browse → Required Actions, the run's row, its subject → the approve task's Required Action tab."""
    login(page, ui)
    page.goto(f"{ui.url}/required_actions")
    row = page.get_by_role("row").filter(has_text=run_id)
    row.get_by_text("Approval Required").wait_for()
    row.get_by_role("link", name="Generate a MiniMax video (T2V-01, 6 s)? It is paid.").click()
    page.wait_for_url(f"**/dags/{DAG_ID}/runs/**/tasks/approve/required_actions**")
    page.get_by_text("What will be sent").wait_for()
    return page


def assert_summary_shown(page, prompt: str) -> None:
    for line in ("Model: T2V-01", "Duration: 6 seconds", f"Prompt: {len(prompt)} characters: {prompt}",
                 "Request: one POST /v1/video_generation", "MiniMax video: 6 seconds (one video, T2V-01"):
        assert page.get_by_text(line).first.is_visible(), line


def test_reject_sends_nothing(ui, emulator, browser_page):
    prompt = "a red kite over the sea at dawn"
    run_id = trigger_awaiting_approval(ui, prompt)
    before = len(creates(emulator))
    page = open_review_panel(browser_page, ui, run_id)
    assert_summary_shown(page, prompt)
    page.screenshot(path=str(DOCS_SCREENSHOT))
    page.get_by_role("button", name="Reject").click()
    state = poll(lambda: ui.api.run(DAG_ID, run_id)["state"], lambda s: s in ("success", "failed"), 240)
    final = states(ui, run_id)
    assert state == "success" and final["approve"] == "success", final  # a decision, not a failure
    assert {final[t] for t in ("create", "wait", "retrieve", "download_and_archive")} == {"skipped"}, final
    assert len(creates(emulator)) == before and jobs_for(emulator, prompt) == []


def test_approve_sends_once_and_the_run_succeeds(ui, emulator, browser_page):
    prompt = "a blue kite over the hills"
    run_id = trigger_awaiting_approval(ui, prompt)
    assert jobs_for(emulator, prompt) == []  # waiting sends nothing
    page = open_review_panel(browser_page, ui, run_id)
    assert_summary_shown(page, prompt)
    page.get_by_role("button", name="Approve").click()
    state = poll(lambda: ui.api.run(DAG_ID, run_id)["state"], lambda s: s in ("success", "failed"), 300)
    assert state == "success", (states(ui, run_id), ui.log_tail())
    assert set(states(ui, run_id).values()) == {"success"}
    assert len(jobs_for(emulator, prompt)) == 1
