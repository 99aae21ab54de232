"""Shared fixtures: an isolated AIRFLOW_HOME, the provider emulator on 127.0.0.1, archive and staging dirs.

Airflow reads its environment at import time, so the variables are set here, before any test module
imports Airflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.airflow_home import project_airflow_env  # noqa: E402  (no Airflow import: safe before the env)
_HOME = Path(tempfile.mkdtemp(prefix="artifact-harvest-airflow-"))

os.environ.update(
    {
        **project_airflow_env(_HOME),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
        # fast retries against the emulator; production keeps the defaults (1 s base, 60 s cap)
        "AIRFLOW__ARTIFACT_HARVEST__RETRY_BASE_DELAY": "0.05",
        "AIRFLOW__ARTIFACT_HARVEST__RETRY_MAX_DELAY": "0.5",
        "AIRFLOW__ARTIFACT_HARVEST__PROGRESS_INTERVAL": "0.5",
    }
)
os.environ.pop("AIRFLOW_CONFIG", None)


@pytest.fixture(scope="session")
def emulator():
    """The provider emulator, one real HTTP server for the whole session (state reset per test by ``emu``)."""
    from harvest_emulator.credentials import connection_env
    from harvest_emulator.server import EmulatorServer

    server = EmulatorServer(host="127.0.0.1", port=0, polls_per_stage=1).start()
    os.environ.update(connection_env(server.url))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def emu(emulator):
    """The emulator with jobs, faults, scenarios and config reset to the test defaults."""
    emulator.control.reset()
    emulator.control.configure(polls_per_stage=1, stage_seconds=3600)
    yield emulator
    emulator.control.reset()


@pytest.fixture(scope="session")
def object_store():
    """moto's S3 server on 127.0.0.1 (free port) for the whole session: a real S3 API with SigV4."""
    from harvest_emulator.object_store import ObjectStore

    store = ObjectStore().start()
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture
def s3_archive(object_store, monkeypatch):
    """An empty bucket and the Variables + ``aws`` connection that make it the archive root; yields the root URL."""
    from harvest_emulator.credentials import archive_s3_env
    from harvest_emulator.object_store import ARCHIVE_BUCKET

    object_store.create_bucket(ARCHIVE_BUCKET)
    object_store.empty_bucket(ARCHIVE_BUCKET)
    root = f"s3://{ARCHIVE_BUCKET}/archive"
    for name, value in archive_s3_env(object_store.url, root).items():
        monkeypatch.setenv(name, value)
    yield root
    object_store.empty_bucket(ARCHIVE_BUCKET)


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated SQLite metadata DB in the session's AIRFLOW_HOME (needed by dag.test())."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True, capture_output=True, env=os.environ.copy(), timeout=300,
    )
    return _HOME


@pytest.fixture
def archive_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "archive"
    root.mkdir()
    monkeypatch.setenv("AIRFLOW_VAR_ARTIFACT_ARCHIVE_ROOT", str(root))
    return root


@pytest.fixture
def staging_dir(tmp_path, monkeypatch) -> Path:
    staging = tmp_path / "staging"
    staging.mkdir()
    monkeypatch.setenv("AIRFLOW_VAR_ARTIFACT_STAGING_DIR", str(staging))
    return staging
