"""The Artifacts page in a real browser, after a demo-sized run: navigation, list, filter, detail, download,
verify, the DAG run's Artifacts tab and the download task's extra link."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import pytest

from tests.browser.conftest import ROOT, login, nav_link, poll

DOCS_SCREENSHOT = ROOT / "docs" / "artifacts-page.png"


def manifests(archive: Path) -> dict[tuple[str, str], dict]:
    return {(m["provider"], m["artifact_key"]): m
            for m in (json.loads(p.read_text()) for p in archive.glob("*/*/manifest.json"))}


@pytest.fixture(scope="module")
def demo_archive(airflow_ui, emulator) -> dict[str, str]:
    """Every demo run triggered through the REST API, as ``make demo`` does; ``{dag_id: run_id}`` once all ended."""
    from harvest_emulator.app import demo_runs

    emulator.control.reset()
    emulator.control.configure(polls_per_stage=0, stage_seconds=0.3)
    api = airflow_ui.api
    runs = demo_runs()
    api.wait_for_dags(sorted({dag_id for dag_id, _ in runs}), timeout=180)
    triggered = {}
    for dag_id, conf in runs:
        poll(lambda: api.unpause(dag_id) or True, bool, 120)
        fast = {**conf, "poll_interval": 0.2} if "poll_interval" in conf else conf
        triggered[dag_id] = _trigger(api, dag_id, fast)
    for dag_id, run_id in triggered.items():
        state = poll(lambda: api.run(dag_id, run_id)["state"], lambda s: s in ("success", "failed"), 600)
        assert state == "success", (dag_id, run_id, state, airflow_ui.log_tail())
    # unpausing a scheduled DAG also starts its latest run: let those end too
    poll(lambda: api.json("GET", "/api/v2/dags/~/dagRuns", params={"state": ["queued", "running"]})["total_entries"],
          lambda active: active == 0, 300)
    return triggered


def _trigger(api, dag_id: str, conf: dict) -> str:
    """POST the run with its own id; a SQLite "database is locked" (HTTP 500 on a loaded machine) is retried,
    and a 409 on a retry means the earlier attempt did create it: never two runs."""
    run_id = f"browser__{dag_id}__{time.time_ns()}"
    body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}

    def post():
        resp = api.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)
        assert resp.status_code in (200, 409, 500, 503), resp.text
        return resp.status_code

    poll(post, lambda status: status in (200, 409), 120)
    return run_id




def artifacts_frame(page):
    frame = page.frame_locator("iframe").first
    frame.get_by_test_id("artifacts").wait_for()
    return frame


def rows(frame):
    frame.get_by_test_id("range").filter(has_text=re.compile(r"\d")).wait_for()
    return frame.get_by_test_id("artifact-row")


def test_an_empty_archive_says_what_to_do(airflow_ui, browser_page):
    """First of the browser tier (``conftest.FIRST``), before any test archives anything (new DAGs start paused)."""
    login(browser_page, airflow_ui)
    nav_link(browser_page, "Artifacts").click()
    frame = browser_page.frame_locator("iframe").first
    message = frame.get_by_test_id("message")
    message.filter(has_text="No artifacts archived yet").wait_for()
    assert "Trigger a download DAG" in message.inner_text()
    assert frame.get_by_test_id("artifact-row").count() == 0


def test_artifacts_page_lists_filters_downloads_and_verifies(airflow_ui, demo_archive, browser_page, tmp_path):
    page = browser_page
    stored = manifests(airflow_ui.archive)
    assert len(stored) >= 11  # the demo archives 11 artifacts (scheduled sweeps may add their own)

    login(page, airflow_ui)
    nav_link(page, "Artifacts").click()
    page.wait_for_url("**/plugin/artifacts")
    frame = artifacts_frame(page)
    listed = rows(frame)
    assert listed.count() == len(stored)
    keys = {(listed.nth(i).get_attribute("data-provider"), listed.nth(i).get_attribute("data-key"))
            for i in range(listed.count())}
    assert keys == set(stored)

    # the usage table: the demo speech's characters as MiniMax counted them, summed per provider, DAG and month
    speech = [m for m in stored.values() if m["dag_id"] == "minimax_generate_speech"]
    assert speech and all(m["usage"]["characters"]["source"] == "provider" for m in speech)
    cells = frame.locator('[data-testid="usage-row"][data-dag="minimax_generate_speech"] [data-name="characters"]')
    cells.first.wait_for()
    shown = cells.evaluate_all("cells => cells.map((c) => Number(c.dataset.total))")
    assert sum(shown) == sum(m["usage"]["characters"]["value"] for m in speech) > 0

    frame.get_by_test_id("filter-provider").select_option("flighthub2")
    frame.get_by_role("button", name="Apply").click()
    expected = sum(1 for provider, _ in stored if provider == "flighthub2")
    frame.get_by_test_id("range").filter(has_text=f"of {expected}").wait_for()
    filtered = frame.get_by_test_id("artifact-row")
    assert filtered.count() == expected
    assert {filtered.nth(i).get_attribute("data-provider") for i in range(expected)} == {"flighthub2"}

    first = filtered.first
    key = first.get_attribute("data-key")
    manifest = stored[("flighthub2", key)]
    first.click()
    frame.get_by_test_id("detail-title").filter(has_text=key).wait_for()
    assert frame.get_by_test_id("detail-sha").inner_text() == manifest["sha256"]
    assert json.loads(frame.get_by_test_id("manifest").inner_text()) == manifest

    with page.expect_download() as info:
        frame.get_by_test_id("download").click()
    download = info.value
    assert download.suggested_filename == manifest["filename"]
    saved = tmp_path / "downloaded"
    download.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == manifest["sha256"]

    frame.get_by_test_id("verify").click()
    frame.get_by_test_id("verify-result").filter(has_text="Verified").wait_for()
    assert manifest["sha256"][:12] in frame.get_by_test_id("verify-result").inner_text()
    if os.environ.get("ARTIFACT_HARVEST_UPDATE_SCREENSHOT") == "1":  # the README's picture
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        page.set_viewport_size({"width": 1280, "height": 720})
        page.screenshot(path=str(DOCS_SCREENSHOT))


def test_dag_run_tab_lists_what_the_run_archived(airflow_ui, demo_archive, browser_page):
    page = browser_page
    dag_id = "flighthub2_reconstruct_model"
    run_id = demo_archive[dag_id]
    archived = {k for (p, k), m in manifests(airflow_ui.archive).items() if m["run_id"] == run_id}
    assert len(archived) == 2  # one per model type of the demo: a mapped task

    login(page, airflow_ui)
    page.goto(f"{airflow_ui.url}/dags/{dag_id}/runs/{run_id}")
    page.locator('a[href$="/plugin/artifacts-run"]').filter(has_text="Artifacts").click()  # the run's tab
    page.wait_for_url("**/plugin/artifacts-run")
    frame = artifacts_frame(page)
    listed = rows(frame)
    assert listed.count() == 2
    assert {listed.nth(i).get_attribute("data-key") for i in range(2)} == archived


def test_download_task_extra_link_opens_its_artifact(airflow_ui, demo_archive, browser_page):
    page = browser_page
    dag_id = "minimax_generate_video"
    run_id = demo_archive[dag_id]
    [(provider, key)] = [k for k, m in manifests(airflow_ui.archive).items() if m["run_id"] == run_id]
    links = airflow_ui.api.json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/download_and_archive/links")
    url = links["extra_links"]["Artifact"]
    assert url.endswith(f"/plugin/artifacts?provider={provider}&key={key}")

    login(page, airflow_ui)
    page.goto(url if url.startswith("http") else airflow_ui.url + url)
    frame = artifacts_frame(page)
    frame.get_by_test_id("detail-title").filter(has_text=key).wait_for()
