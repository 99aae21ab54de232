"""Every waiting DAG takes an optional ``deadline``; a run created the way the scheduler and the REST API create it
(``create_dagrun`` on the DAG read back from the metadata DB) gets a deadline row at ``queued_at`` + its value,
calling the late-run callback in the triggerer; without a value, none. The alert firing with the real scheduler
and triggerer: tests/browser/test_deadlines.py."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from airflow.sdk.exceptions import ParamValidationError

from artifact_harvest.core.deadlines import RunDeadline
from harvest_emulator.minimax import SEED_VIDEO_FILE_ID
from tests.support import DAGS, load_dag, scheduler_dag

DAG_ID = "minimax_archive_file"
#: every pipeline except the MiniMax sweep, which waits for nothing
WAITING = sorted(p.stem for p in DAGS.glob("*.py") if p.stem != "minimax_archive_new_files")


@pytest.mark.parametrize("dag_id", WAITING)
def test_every_waiting_dag_takes_an_optional_deadline(dag_id):
    dag = load_dag(dag_id)
    param = dag.params.get_param("deadline")
    assert param.value is None and param.schema["format"] == "duration"
    assert param.schema["section"] == "Waiting (advanced)"
    [alert] = dag.deadline
    assert alert.reference == RunDeadline() and alert.interval == timedelta(0)
    assert alert.callback.path == "artifact_harvest.core.late_runs.notify_late_run"


def test_the_sweep_that_waits_for_nothing_has_no_deadline():
    dag = load_dag("minimax_archive_new_files")
    assert "deadline" not in dag.params and not dag.deadline


@pytest.fixture(scope="module")
def dag_in_db(airflow_db):
    return scheduler_dag(DAG_ID)


def create_run(dag, conf: dict):
    """A manual run as the REST API creates it (queued, conf checked against the Params); with its deadlines."""
    from airflow.models.deadline import Deadline
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import select

    with create_session() as session:
        run = dag.create_dagrun(run_id=f"deadline__{uuid.uuid4().hex}", run_type=DagRunType.MANUAL, conf=conf,
                                state=DagRunState.QUEUED, run_after=datetime.now(timezone.utc),
                                triggered_by=DagRunTriggeredByType.REST_API, session=session)
        session.flush()
        deadlines = session.scalars(select(Deadline).where(Deadline.dagrun_id == run.id)).all()
        return run.queued_at, [(d.deadline_time, d.missed, dict(d.callback.data), type(d.callback).__name__)
                               for d in deadlines]


def test_a_run_with_a_deadline_gets_one_at_queued_at_plus_its_value(dag_in_db):
    queued_at, deadlines = create_run(dag_in_db, {"file_id": 1, "deadline": "PT5S"})
    [(deadline_time, missed, callback, kind)] = deadlines
    assert deadline_time == queued_at + timedelta(seconds=5) and missed is False
    assert kind == "TriggererCallback"  # an AsyncCallback: it runs in the triggerer
    assert callback["path"] == "artifact_harvest.core.late_runs.notify_late_run"


@pytest.mark.parametrize("conf", [{"file_id": 1}, {"file_id": 1, "deadline": None}], ids=["absent", "null"])
def test_a_run_without_a_deadline_gets_none(dag_in_db, conf):
    assert create_run(dag_in_db, conf)[1] == []


@pytest.mark.parametrize("bad", ["banana", "PT0S", "", 300], ids=repr)
def test_a_bad_deadline_refuses_the_run(dag_in_db, bad):
    with pytest.raises(ParamValidationError, match="deadline"):
        create_run(dag_in_db, {"file_id": 1, "deadline": bad})


def test_dag_test_runs_a_dag_with_a_deadline_to_the_end(airflow_db, emu, archive_root, staging_dir, monkeypatch):
    """dag.test() creates the run through the same code, so the deadline is set; the run still ends (with
    ``support.dag_test_with_deadlines``: apache/airflow#73428)."""
    evaluated = []
    deadline_of = RunDeadline.deadline_of

    def recording(self, conf, since, *args):
        evaluated.append((since, deadline_of(self, conf, since, *args)))
        return evaluated[-1][1]

    monkeypatch.setattr(RunDeadline, "deadline_of", recording)
    run = load_dag(DAG_ID).test(run_conf={"file_id": SEED_VIDEO_FILE_ID, "poll_interval": 0.05, "deadline": "PT1H"})
    assert run.state == "success"
    [(since, at)] = evaluated
    assert since is not None and at == since + timedelta(hours=1)
