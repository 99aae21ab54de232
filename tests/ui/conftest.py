"""The Artifacts API in-process: Airflow's own API server app (plugins from the entry point) on the session DB,
with artifacts archived by real dag.test() runs against the emulator."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from harvest_emulator.flighthub2 import SAMPLE_PHOTOS
from tests.support import load_dag, task_states

FAST = {"poll_interval": 0.05, "timeout": "PT30S"}
USERS = "admin:admin,viewer:viewer,restricted:viewer"


@pytest.fixture(scope="session")
def ui_archive() -> Path:
    return Path(tempfile.mkdtemp(prefix="artifact-harvest-ui-archive-"))


@pytest.fixture(autouse=True)
def _archive_env(ui_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_ARTIFACT_ARCHIVE_ROOT", str(ui_archive))
    monkeypatch.setenv("AIRFLOW_VAR_ARTIFACT_STAGING_DIR", str(tmp_path / "staging"))
    monkeypatch.setenv("ARTIFACT_HARVEST_VERIFY_DIR", str(tmp_path / "verify"))


@pytest.fixture(scope="session")
def archived(airflow_db, emulator, ui_archive) -> dict[str, list]:
    """``{dag_id: [run, ...]}``: a speech bundle, a video and two FlightHub 2 models (a mapped task)."""
    emulator.control.reset()
    emulator.control.configure(polls_per_stage=1, stage_seconds=3600)
    env = {"AIRFLOW_VAR_ARTIFACT_ARCHIVE_ROOT": str(ui_archive),
           "AIRFLOW_VAR_ARTIFACT_STAGING_DIR": tempfile.mkdtemp(prefix="artifact-harvest-ui-staging-")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        runs = {}
        for dag_id, conf in [
            ("minimax_generate_speech", {"text": "hello there", "format": "wav", **FAST}),
            ("minimax_generate_video", {"prompt": "a red kite", "model": "T2V-01", **FAST}),
            ("flighthub2_reconstruct_model", {"photos": SAMPLE_PHOTOS, "model_types": ["2d", "3d"], **FAST}),
        ]:
            run = load_dag(dag_id).test(run_conf=conf)
            assert run.state == "success", task_states(run)
            runs[dag_id] = run
        return runs
    finally:
        _restore(saved)


@pytest.fixture(scope="session")
def api_app(airflow_db):
    """Airflow's API server app with the test auth manager; plugins load from the package's entry point."""
    settings = {"AIRFLOW__CORE__AUTH_MANAGER": "tests.ui.auth_manager.OneDagHiddenAuthManager",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": USERS}
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    from airflow.api_fastapi.app import create_app

    try:
        yield create_app()
    finally:
        _restore(saved)


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def token_for(username: str, role: str) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role))


@pytest.fixture(scope="session")
def client_for(api_app):
    from fastapi.testclient import TestClient

    def make(username: str | None, role: str = "viewer", *, cookie: bool = False) -> TestClient:
        client = TestClient(api_app)
        if username is not None:
            token = token_for(username, role)
            if cookie:
                client.cookies.set("_token", token)  # how the UI's page sends it
            else:
                client.headers["Authorization"] = f"Bearer {token}"
        return client

    return make


@pytest.fixture(scope="session")
def viewer(client_for):
    return client_for("viewer", cookie=True)
