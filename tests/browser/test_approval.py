"""Paid work waits for a person, in a real browser against a real Airflow: a MiniMax video run triggered with
*Require approval* ticked in the form appears under Browse → Required Actions, its review panel shows what will
be sent and what it uses, and Reject sends nothing to the emulator while Approve sends the video once and the
run succeeds.

The panel of the rejected run is kept as ``docs/approval.png`` when ``ARTIFACT_HARVEST_UPDATE_SCREENSHOT=1``.
"""

from __future__ import annotations

import os

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


def awaiting_approval(ui, run_id: str) -> str:
    """``run_id`` once its approve task awaits input (nothing sent yet)."""
    poll(lambda: states(ui, run_id).get("approve"), lambda state: state == "awaiting_input", 240)
    return run_id


def trigger_in_form(page, ui, prompt: str) -> str:
    """The trigger form with the prompt filled and *Require approval* ticked (the rest left at defaults)."""
    before = {run["dag_run_id"] for run in ui.api.runs(DAG_ID)}
    page.goto(f"{ui.url}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.locator("[role=dialog][data-state=open]")
    dialog.get_by_text(f"Trigger Dag - {DAG_ID}").wait_for()
    dialog.locator('[name="element_prompt"]').fill(prompt)
    dialog.get_by_text("Approval", exact=True).click()  # the form's Approval section
    switch = dialog.locator('[id="switch:element_require_approval"]')
    assert switch.get_attribute("data-state") == "unchecked"  # off unless asked for
    switch.click()
    assert switch.get_attribute("data-state") == "checked"
    dialog.get_by_role("button", name="Trigger").click()
    [run] = poll(lambda: [r for r in ui.api.runs(DAG_ID) if r["dag_run_id"] not in before])
    assert run["conf"]["require_approval"] is True and run["conf"]["prompt"] == prompt
    return run["dag_run_id"]


def open_review_panel(page, ui, run_id: str, model: str):
    """Browse → Required Actions, the run's row, its subject → the approve task's Required Action tab."""
    page.goto(f"{ui.url}/required_actions")
    row = page.get_by_role("row").filter(has_text=run_id)
    row.get_by_text("Approval Required").wait_for()
    row.get_by_role("link", name=f"Generate a MiniMax video ({model}, 6 s)? It is paid.").click()
    page.wait_for_url(f"**/dags/{DAG_ID}/runs/**/tasks/approve/required_actions**")
    page.get_by_text("What will be sent").wait_for()
    return page


def assert_summary_shown(page, prompt: str, model: str) -> None:
    for line in (f"Model: {model}", "Duration: 6 seconds", f"Prompt: {len(prompt)} characters: {prompt}",
                 "Request: one POST /v1/video_generation", f"MiniMax video: 6 seconds (one video, {model}"):
        assert page.get_by_text(line).first.is_visible(), line


def test_reject_sends_nothing(ui, emulator, browser_page):
    prompt, model = "a red kite over the sea at dawn", "MiniMax-Hailuo-02"  # the form's default model
    before = len(creates(emulator))
    login(browser_page, ui)
    run_id = awaiting_approval(ui, trigger_in_form(browser_page, ui, prompt))
    page = open_review_panel(browser_page, ui, run_id, model)
    assert_summary_shown(page, prompt, model)
    if os.environ.get("ARTIFACT_HARVEST_UPDATE_SCREENSHOT") == "1":  # docs/approval.md's picture
        page.screenshot(path=str(DOCS_SCREENSHOT))
    page.get_by_role("button", name="Reject").click()
    state = poll(lambda: ui.api.run(DAG_ID, run_id)["state"], lambda s: s in ("success", "failed"), 240)
    final = states(ui, run_id)
    assert state == "success" and final["approve"] == "success", final  # a decision, not a failure
    assert {final[t] for t in ("create", "wait", "retrieve", "download_and_archive")} == {"skipped"}, final
    assert len(creates(emulator)) == before and jobs_for(emulator, prompt) == []


def test_approve_sends_once_and_the_run_succeeds(ui, emulator, browser_page):
    prompt, model = "a blue kite over the hills", "T2V-01"
    conf = {"prompt": prompt, "model": model, "require_approval": True, "poll_interval": 0.2}
    run_id = awaiting_approval(ui, poll(lambda: ui.api.trigger(DAG_ID, conf), bool, 120))  # the REST API
    assert jobs_for(emulator, prompt) == []  # waiting sends nothing
    login(browser_page, ui)
    page = open_review_panel(browser_page, ui, run_id, model)
    assert_summary_shown(page, prompt, model)
    page.get_by_role("button", name="Approve").click()
    state = poll(lambda: ui.api.run(DAG_ID, run_id)["state"], lambda s: s in ("success", "failed"), 300)
    assert state == "success", (states(ui, run_id), ui.log_tail())
    assert set(states(ui, run_id).values()) == {"success"}
    assert len(jobs_for(emulator, prompt)) == 1
