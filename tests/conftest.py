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
        # no OpenLineage events (and no listener) unless a test turns it on: tests/dags/test_lineage.py
        "AIRFLOW__OPENLINEAGE__DISABLED": "True",
    }
)
os.environ.pop("AIRFLOW_CONFIG", None)


# Tests that share a fixture too costly to start on every worker run on one worker of pytest-xdist (`make test`:
# -n 2 --dist loadgroup): the browser tests' `airflow standalone`, the distributed tests' shared stack, and
# test_many_waits.py's stack of its own (half as long as the shared stack's tests together, so it runs beside
# them; a module that only needs other settings applies them to the shared stack, tests/distributed/conftest.py).
# Everything else is spread over both workers, one test at a time.
# xdist's own xdist_group marker is silently ignored under pytest 9 (xdist 3.8 renames `item._nodeid`, which
# pytest 9 no longer reads), so the groups are made by a scheduler: one xdist scope per group.
_GROUPS = {"browser": "airflow_ui", "distributed": "celery_stack"}
_OWN_GROUP = {"test_many_waits.py": "celery_stack_waits"}


def xdist_group_of(nodeid: str) -> str | None:
    """The worker group of a test (``tests/<folder>/<file>::<name>``), or None for a test that runs anywhere."""
    parts = nodeid.split("::", 1)[0].split("/")
    if len(parts) < 3 or parts[0] != "tests":
        return None
    return _OWN_GROUP.get(parts[-1]) or _GROUPS.get(parts[1])


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid) or nodeid

    return GroupScheduling(config, log)


def unpaced(env: dict[str, str]) -> dict[str, str]:
    """The suite's default connections with a pace far above anything it sends (the providers' documented
    paces would only slow it down); the pacing tests make connections of their own (tests/integration/core/test_pace.py)."""
    import json

    out = {}
    for name, value in env.items():
        conn = json.loads(value)
        if isinstance(conn, dict) and conn.get("conn_type") in ("minimax", "flighthub2", "qianfan"):
            conn["extra"] = {**(conn.get("extra") or {}), "rate_limit_rps": 1000}
            value = json.dumps(conn)
        out[name] = value
    return out


@pytest.fixture(scope="session")
def emulator():
    """The provider emulator, one real HTTP server for the whole session (state reset per test by ``emu``)."""
    from harvest_emulator.credentials import connection_env
    from harvest_emulator.server import EmulatorServer

    server = EmulatorServer(host="127.0.0.1", port=0, polls_per_stage=1).start()
    os.environ.update(unpaced(connection_env(server.url)))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def emu(emulator, object_store):
    """The emulator with jobs, faults, scenarios and config reset to the test defaults.

    FlightHub 2's upload credential points at moto's S3 server: photo uploads meet real SigV4, ETags and
    multipart. Tests of the bucket misbehaving (a 403 on one photo, a bare 429) use ``emulator_s3`` instead.
    """
    from harvest_emulator.flighthub2 import UPLOAD_BUCKET

    object_store.create_bucket(UPLOAD_BUCKET)
    emulator.control.reset()
    emulator.control.configure(polls_per_stage=1, stage_seconds=3600, upload_endpoint=object_store.url)
    yield emulator
    emulator.control.reset()


@pytest.fixture
def emulator_s3(emu):
    """The emulator's own minimal S3 as the upload target: the one S3 here whose faults can refuse one photo
    or answer a bare 429, and that logs every request (moto does neither)."""
    emu.control.configure(upload_endpoint=None)
    return emu


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
    """A migrated SQLite metadata DB in the session's AIRFLOW_HOME (needed by dag.test()), with dag.test() able to
    finish a run of a DAG with a Deadline Alert (``support.dag_test_with_deadlines``: apache/airflow#73428)."""
    from tests.support import dag_test_with_deadlines

    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True, capture_output=True, env=os.environ.copy(), timeout=300,
    )
    with dag_test_with_deadlines():
        yield _HOME


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
