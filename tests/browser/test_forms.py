"""The trigger forms and the connection Test button as a person meets them, in headless chromium.

Screenshots of every form are kept in ``.browser/screenshots/forms/`` (failures: ``.browser/screenshots/``).
"""

from __future__ import annotations

import os
import re

import pytest

from tests.browser.conftest import ROOT, SCREENSHOTS, login, poll

# The connection list's Test button answers 403 unless enabled; set before the session's Airflow starts.
os.environ.setdefault("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")

FORMS = SCREENSHOTS / "forms"
PHOTOS = str(ROOT / "include" / "sample_data" / "flighthub2_photos")

#: on-demand DAG → the inputs its form must show empty (what identifies paid work), and whether one is required
EMPTY_FIELDS = {
    "minimax_generate_video": (["prompt"], True),
    "minimax_generate_speech": (["text"], True),
    "minimax_archive_file": (["file_id"], True),
    "qianfan_export_model": (["model_version_id"], True),
    "flighthub2_reconstruct_model": (["photos", "resource_uuid"], False),  # either one: checked by the first task
    "flighthub2_download_model": (["model_uuid", "file_id"], False),
}


def start(page, airflow_ui) -> None:
    """Log in, with room for a slow machine (the API server shares two cores with the scheduler)."""
    page.set_default_timeout(60_000)
    page.set_default_navigation_timeout(120_000)
    login(page, airflow_ui)


def shot(page, name: str) -> None:
    FORMS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(FORMS / f"{name}.png"), full_page=True)


def open_trigger_form(page, airflow_ui, dag_id: str):
    page.goto(f"{airflow_ui.url}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.locator("[role=dialog][data-state=open]")
    dialog.get_by_text(f"Trigger Dag - {dag_id}").wait_for()
    return dialog


@pytest.fixture(scope="module")
def ui(airflow_ui, emulator):
    """The UI, with the emulator's connections and a bad-key one stored in the metadata DB (the list shows
    only those), as a user adds them."""
    from harvest_emulator.credentials import connections

    conns = {**connections(emulator.url)}
    conns["minimax_bad_key"] = {**conns["minimax_default"], "password": "sk-api-NotTheRightKey0000000000"}
    for conn_id, conn in conns.items():
        body = {"connection_id": conn_id, **conn}
        airflow_ui.api.request("DELETE", f"/api/v2/connections/{conn_id}")
        airflow_ui.api.json("POST", "/api/v2/connections", json=body)
    return airflow_ui


def test_trigger_forms_show_the_paid_inputs_empty(ui, browser_page):
    page = browser_page
    start(page, ui)
    for dag_id, (fields, required) in EMPTY_FIELDS.items():
        dialog = open_trigger_form(page, ui, dag_id)
        for name in fields:
            field = dialog.locator(f'[name="element_{name}"]')
            field.wait_for()
            assert field.input_value() == "", (dag_id, name)
        shot(page, f"trigger_{dag_id}")
        if required:  # the required field is marked and the blank form cannot be sent
            assert dialog.get_by_text("This field is required").first.is_visible(), dag_id
            assert dialog.get_by_role("button", name="Trigger").is_disabled(), dag_id
        page.keyboard.press("Escape")


def run_ids(ui, dag_id: str) -> set[str]:
    """The DAG's runs so far (the shared Airflow may hold other tests' runs)."""
    return {run["dag_run_id"] for run in ui.api.runs(dag_id)}


def test_blank_trigger_is_refused(ui, browser_page):
    page = browser_page
    start(page, ui)
    before = {dag_id: run_ids(ui, dag_id) for dag_id in ("minimax_generate_video", "qianfan_export_model")}
    for dag_id in ("minimax_generate_video", "qianfan_export_model"):
        dialog = open_trigger_form(page, ui, dag_id)
        trigger = dialog.get_by_role("button", name="Trigger")
        assert trigger.is_disabled()
        trigger.click(force=True)  # a click on the disabled button sends nothing
        shot(page, f"blank_{dag_id}")
        page.keyboard.press("Escape")
    for dag_id in ("minimax_generate_video", "qianfan_export_model"):
        assert run_ids(ui, dag_id) == before[dag_id], dag_id


def test_model_types_multi_select(ui, browser_page):
    page = browser_page
    start(page, ui)
    before = run_ids(ui, "flighthub2_reconstruct_model")
    dialog = open_trigger_form(page, ui, "flighthub2_reconstruct_model")
    select = dialog.locator("#element_model_types")
    assert "3D model (mesh)" in select.inner_text()  # the default, shown by its label
    select.get_by_role("combobox").click()
    page.get_by_role("option", name="3D Gaussian splatting (3DGS)").click()
    select.get_by_role("combobox").click()
    page.get_by_role("option", name="2D map (orthophoto)").click()
    dialog.get_by_text("Trigger Dag - flighthub2_reconstruct_model").click()  # close the menu, keep the dialog
    dialog.locator('[name="element_photos"]').fill(PHOTOS)
    shot(page, "multi_select_model_types")
    dialog.get_by_role("button", name="Trigger").click()
    [run] = poll(lambda: [r for r in ui.api.runs("flighthub2_reconstruct_model") if r["dag_run_id"] not in before])
    assert run["conf"]["model_types"] == ["3d", "3dgs", "2d"]
    assert run["conf"]["photos"] == PHOTOS


def test_duration_field_is_iso_8601(ui, browser_page):
    page = browser_page
    start(page, ui)
    dialog = open_trigger_form(page, ui, "qianfan_export_model")
    dialog.get_by_text("Waiting (advanced)").click()
    timeout = dialog.locator('[name="element_timeout"]')
    assert timeout.input_value() == "PT6H" and "ISO 8601" in (timeout.get_attribute("placeholder") or "")
    timeout.fill("six hours")
    dialog.get_by_text("Invalid ISO 8601 duration format").wait_for()  # checked in the browser, before sending
    shot(page, "duration_field")


def test_connection_test_button(ui, browser_page):
    """Success for the emulator's keys, the provider's code and message for a bad key."""
    page = browser_page
    start(page, ui)
    for conn_id, ok, said in [
        ("flighthub2_default", True, "FlightHub 2 accepted the organization key"),
        ("minimax_default", True, "MiniMax accepted the API key"),
        ("qianfan_default", True, "Qianfan accepted the AK/SK signature"),
        ("minimax_bad_key", False, "code 1004"),
    ]:
        page.goto(f"{ui.url}/connections")
        page.get_by_role("row").filter(has_text=conn_id).get_by_role("button", name="Test Connection").click()
        page.get_by_text("Test Connection Successful" if ok else "Test Connection Failed").wait_for()
        assert page.get_by_text(re.compile(re.escape(said))).first.is_visible(), conn_id
        shot(page, f"connection_test_{conn_id}")


def test_connection_form_shows_the_help_and_the_required_project(ui, browser_page):
    page = browser_page
    start(page, ui)
    page.goto(f"{ui.url}/connections")
    page.get_by_role("row").filter(has_text="flighthub2_default").get_by_role("button", name="Edit Connection").click()
    dialog = page.locator("[role=dialog][data-state=open]")
    dialog.get_by_text("Base URL (region host)").wait_for()
    assert dialog.get_by_text("Organization key (X-User-Token)").is_visible()
    placeholders = " ".join(p or "" for p in dialog.locator("input, textarea").evaluate_all(
        "els => els.map(e => e.getAttribute('placeholder'))"))
    for help_text in ("es-flight-api-eu.djigate.com", "-cn China", "-us US", ":30812", "FlightHub Sync"):
        assert help_text in placeholders, placeholders
    dialog.get_by_text("Extra Fields", exact=True).click()
    dialog.get_by_text("Required. Sent as X-Project-Uuid").wait_for()
    shot(page, "connection_form_flighthub2")
