"""The SLA line's API (``/artifacts/api/late-runs``) in-process: runs created as the scheduler and the REST API
create them (``create_dagrun``, deadline rows included) and still queued; only readable DAGs, only past
deadlines, filtered by run, 401 without a user."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.support import scheduler_dag
from tests.ui.auth_manager import HIDDEN_DAG

API = "/artifacts/api/late-runs"
VISIBLE_DAG = "minimax_archive_file"


def _queue(dag, conf: dict) -> str:
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    run_id = f"sla__{uuid.uuid4().hex}"
    with create_session() as session:
        dag.create_dagrun(run_id=run_id, run_type=DagRunType.MANUAL, conf=conf, state=DagRunState.QUEUED,
                          run_after=datetime.now(timezone.utc), triggered_by=DagRunTriggeredByType.REST_API,
                          session=session)
    return run_id


@pytest.fixture(scope="module")
def runs(airflow_db, api_app):
    """``{name: run_id}``: late (a 1 ms deadline) in a visible and in the hidden DAG, one not late yet, one
    without a deadline; failed afterwards, so no other test meets them queued."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import update

    visible, hidden = scheduler_dag(VISIBLE_DAG), scheduler_dag(HIDDEN_DAG)
    made = {
        "late": _queue(visible, {"file_id": 1, "deadline": "PT0.001S"}),
        "hidden_late": _queue(hidden, {"text": "late", "deadline": "PT0.001S"}),
        "not_yet": _queue(visible, {"file_id": 1, "deadline": "P1D"}),
        "none": _queue(visible, {"file_id": 1}),
    }
    yield made
    with create_session() as session:
        session.execute(update(DagRun).where(DagRun.run_id.in_(made.values())).values(state=DagRunState.FAILED))


def _listed(client, **params) -> dict[str, dict]:
    body = client.get(API, params=params).json()
    assert body["total"] == len(body["late_runs"])
    return {r["run_id"]: r for r in body["late_runs"]}


def test_a_queued_run_past_its_deadline_is_listed(viewer, runs):
    listed = _listed(viewer)
    late = listed[runs["late"]]
    assert late["dag_id"] == VISIBLE_DAG and late["state"] == "queued" and late["late_seconds"] > 0
    assert datetime.fromisoformat(late["deadline"]) - datetime.fromisoformat(late["queued_at"]) == timedelta(
        milliseconds=1)
    assert late["alerted"] is False and late["waiting"] == []  # no scheduler here: no callback, no task started
    assert runs["not_yet"] not in listed and runs["none"] not in listed
    assert runs["hidden_late"] in listed  # the viewer reads every DAG


def test_only_readable_dags_are_listed(client_for, runs):
    listed = _listed(client_for("restricted"))
    assert runs["late"] in listed and runs["hidden_late"] not in listed
    assert _listed(client_for("restricted"), dag_id=HIDDEN_DAG) == {}


def test_filters_by_run(viewer, runs):
    assert list(_listed(viewer, dag_id=VISIBLE_DAG, run_id=runs["late"])) == [runs["late"]]
    assert _listed(viewer, run_id=runs["not_yet"]) == {}


def test_anonymous_gets_401(client_for, runs):
    assert client_for(None).get(API).status_code == 401
