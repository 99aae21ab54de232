"""core.deadlines: the ``deadline`` Param's validation, and RunDeadline evaluated as the scheduler evaluates it
(read back through Airflow's own decoder, which resolves custom references through the plugin)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import ParamValidationError

from artifact_harvest.core.deadlines import RunDeadline, deadline_param, deadline_seconds, late_run_alert

QUEUED = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("value", "seconds"), [
    (None, None), ("", None), ("  ", None), ("PT5S", 5), ("PT30M", 1800), ("P1D", 86400), ("PT1.5S", 1.5),
    ("P1DT2H", 93600), (" PT2H ", 7200),
])
def test_deadline_seconds(value, seconds):
    assert deadline_seconds(value) == seconds


@pytest.mark.parametrize("bad", ["banana", "PT0S", "P0D", "-PT5S", "5", 5, 0, True, "PT4 minutes"], ids=repr)
def test_deadline_seconds_refuses_what_is_not_a_positive_duration(bad):
    with pytest.raises(ValueError, match="ISO 8601 duration"):
        deadline_seconds(bad)


@pytest.mark.parametrize("good", [None, "PT5S", "PT2H", "P1D", "P1W", "PT1.5S"], ids=repr)
def test_the_param_takes_a_positive_duration_or_nothing(good):
    assert deadline_param().resolve(good) == good


@pytest.mark.parametrize("bad", ["", "banana", "PT0S", "-PT5S", "PT4 minutes", 5, 0, True], ids=repr)
def test_the_param_refuses_anything_else(bad):
    """What the trigger checks (form, conf, REST API): ``""`` too, as the form's duration box sends null."""
    with pytest.raises(ParamValidationError):
        deadline_param().resolve(bad)


def test_the_param_is_the_forms_duration_box():
    schema = deadline_param().schema
    assert schema["type"] == ["null", "string"] and schema["format"] == "duration"
    assert deadline_param().resolve() is None  # no deadline unless asked


@pytest.mark.parametrize(("conf", "default", "expected"), [
    ({"deadline": "PT5S"}, None, QUEUED + timedelta(seconds=5)),
    ({"deadline": "PT5S"}, "P1D", QUEUED + timedelta(seconds=5)),  # the run's own value wins
    ({}, "PT2H", QUEUED + timedelta(hours=2)),  # scheduled runs and REST calls without it: the Param's default
    (None, "PT2H", QUEUED + timedelta(hours=2)),
    ({"deadline": None}, "PT2H", None),  # the form's emptied box: no deadline for this run
    ({"deadline": ""}, None, None),
    ({}, None, None),
])
def test_the_deadline_is_queued_at_plus_the_runs_value(conf, default, expected):
    assert RunDeadline(default=default).deadline_of(conf, QUEUED) == expected


def test_a_value_no_param_checked_sets_no_deadline_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="artifact_harvest.core.deadlines"):
        assert RunDeadline().deadline_of({"deadline": "soon"}, QUEUED, "a_dag", "a_run") is None
    assert "a_run" in caplog.text and "a_dag" in caplog.text and "'soon'" in caplog.text


class Rows:
    """A session answering the run query with one row (or none), recording nothing else."""

    def __init__(self, row):
        self.row, self.queries = row, []

    def execute(self, query):
        self.queries.append(str(query))
        return SimpleNamespace(one_or_none=lambda: self.row)


def run_row(conf=None, queued_at=None, start_date=None, run_after=None):
    return SimpleNamespace(conf=conf, queued_at=queued_at, start_date=start_date, run_after=run_after)


def scheduler_side(default: str | None = None):
    """The DAG's alert as the scheduler sees it: encoded at parse time, decoded from the deadline_alert row."""
    from airflow.serialization.decoders import decode_deadline_alert
    from airflow.serialization.encoders import encode_deadline_alert
    from airflow.serialization.definitions.deadline import SerializedReferenceModels

    alert = decode_deadline_alert(encode_deadline_alert(late_run_alert(default)))
    assert isinstance(alert.reference, SerializedReferenceModels.TYPES.DAGRUN)  # evaluated when a run is created
    return alert


def test_the_scheduler_reads_the_reference_back_through_the_plugin():
    alert = scheduler_side("PT2H")
    assert alert.reference.inner_ref == RunDeadline(default="PT2H")
    assert alert.interval == timedelta(0)
    assert alert.callback.path == "artifact_harvest.core.late_runs.notify_late_run"


def test_the_scheduler_evaluates_queued_at_plus_the_conf():
    """``evaluate_with`` exactly as ``SerializedDAG._process_dagrun_deadline_alerts`` calls it."""
    alert = scheduler_side()
    session = Rows(run_row({"deadline": "PT5S"}, queued_at=QUEUED, start_date=QUEUED + timedelta(minutes=1)))
    at = alert.reference.evaluate_with(session=session, interval=alert.interval, dag_id="d", run_id="r")
    assert at == QUEUED + timedelta(seconds=5)
    assert "dag_run.dag_id" in session.queries[0] and "dag_run.run_id" in session.queries[0]


@pytest.mark.parametrize(("row", "expected"), [
    (run_row({"deadline": "PT5S"}, start_date=QUEUED), QUEUED + timedelta(seconds=5)),  # dag.test: never queued
    (run_row({"deadline": "PT5S"}, run_after=QUEUED), QUEUED + timedelta(seconds=5)),
    (run_row({}), None),
    (None, None),  # no such run
])
def test_the_scheduler_falls_back_to_start_then_run_after(row, expected):
    alert = scheduler_side()
    assert alert.reference.evaluate_with(session=Rows(row), interval=timedelta(0), dag_id="d", run_id="r") == expected
