"""core.late_runs.notify_late_run: the log line and the webhook POST (to a real local HTTP server), with the
context Airflow's scheduler builds for a deadline callback; the webhook URL's token never reaches a log."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import airflow.configuration  # noqa: F401 - Airflow sets up logging on first import: before caplog, not inside a test
import pytest

from artifact_harvest.core import late_runs
from artifact_harvest.core.late_runs import LateRun, human_duration, notify_late_run, webhook_target
from tests.webhook_receiver import WebhookReceiver

TOKEN = "s3cr3t-t0ken"
QUEUED = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
DEADLINE = QUEUED + timedelta(seconds=5)
ENV = "AIRFLOW__ARTIFACT_HARVEST__DEADLINE_WEBHOOK_URL"


def context(state: str = "running") -> dict:
    """As ``Deadline.handle_miss`` builds it: the run as the REST API shows it (JSON), the deadline as stored."""
    return {"dag_run": {"dag_id": "minimax_generate_video", "dag_run_id": "manual__late", "state": state,
                        "queued_at": QUEUED.isoformat().replace("+00:00", "Z"), "conf": {"deadline": "PT5S"}},
            "deadline": {"id": "0195", "deadline_time": DEADLINE}}


@pytest.fixture
def hook(monkeypatch):
    with WebhookReceiver() as receiver:
        monkeypatch.setenv(ENV, receiver.url(f"/hooks/{TOKEN}?token={TOKEN}"))
        monkeypatch.setattr(late_runs, "WEBHOOK_BACKOFF", 0.0)
        yield receiver


@pytest.fixture
def waiting(monkeypatch):
    """What the triggerer's task-state call would answer (outside a triggerer there is none)."""
    tasks = [{"task": "wait", "state": "deferred"}]

    async def fake(dag_id: str, run_id: str):
        assert (dag_id, run_id) == ("minimax_generate_video", "manual__late")
        return tasks

    monkeypatch.setattr(late_runs, "waiting_tasks", fake)
    return tasks


async def test_a_late_run_is_logged_and_posted(hook, waiting, caplog):
    with caplog.at_level(logging.INFO, logger="artifact_harvest.core.late_runs"):
        result = await notify_late_run(context())
    post = hook.wait_for(lambda r: True, timeout=10)
    assert post.path == f"/hooks/{TOKEN}" and post.query == {"token": [TOKEN]}
    body = post.body
    assert body["event"] == "deadline_missed"
    assert (body["dag_id"], body["run_id"], body["state"]) == ("minimax_generate_video", "manual__late", "running")
    assert body["deadline"] == DEADLINE.isoformat() and body["queued_at"] == QUEUED.isoformat()
    assert body["waiting"] == waiting and body["late_seconds"] > 0
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Late run: "))
    assert "DAG minimax_generate_video run manual__late" in line and "wait (deferred)" in line
    assert "5.0 s after it was queued" in line and "late by" in line
    assert result["notified"] is True and result["waiting"] == waiting
    assert TOKEN not in caplog.text and TOKEN not in repr(result)
    assert f"webhook at {hook.base_url} notified" in caplog.text


async def test_a_failing_webhook_is_tried_again(hook, waiting, caplog):
    hook.plan(503, 500)
    assert (await notify_late_run(context()))["notified"] is True
    assert [r.status for r in hook.received] == [503, 500, 204]


async def test_a_refusing_webhook_is_not_retried_and_the_url_stays_out_of_the_log(hook, waiting, caplog):
    hook.plan(404)
    with caplog.at_level(logging.INFO, logger="artifact_harvest.core.late_runs"):
        assert (await notify_late_run(context()))["notified"] is False
    assert len(hook.received) == 1
    assert "not notified (HTTP 404)" in caplog.text and TOKEN not in caplog.text


async def test_an_unreachable_webhook_is_logged_without_its_url(monkeypatch, waiting, caplog):
    with WebhookReceiver() as closed:
        url = closed.url(f"/x?token={TOKEN}")
    monkeypatch.setenv(ENV, url)  # nothing listens there any more
    monkeypatch.setattr(late_runs, "WEBHOOK_BACKOFF", 0.0)
    with caplog.at_level(logging.INFO, logger="artifact_harvest.core.late_runs"):
        assert (await notify_late_run(context()))["notified"] is False
    assert "not notified (ClientConnectorError)" in caplog.text and TOKEN not in caplog.text


async def test_without_a_webhook_the_alert_is_the_log_line(monkeypatch, waiting, caplog):
    monkeypatch.delenv(ENV, raising=False)
    with caplog.at_level(logging.WARNING, logger="artifact_harvest.core.late_runs"):
        result = await notify_late_run(context())
    assert result["late"] is True and result["notified"] is False
    assert "Late run: DAG minimax_generate_video run manual__late" in caplog.text


async def test_a_run_that_already_ended_is_not_reported(hook, waiting, caplog):
    with caplog.at_level(logging.INFO, logger="artifact_harvest.core.late_runs"):
        result = await notify_late_run(context(state="failed"))
    assert result == {"dag_id": "minimax_generate_video", "run_id": "manual__late", "late": False, "notified": False}
    assert hook.received == [] and "ended (failed) before its deadline" in caplog.text


async def test_outside_a_triggerer_the_waiting_tasks_are_unknown():
    assert await late_runs.waiting_tasks("a_dag", "a_run") is None
    late = LateRun.from_context(context())
    assert "still waiting: unknown" in late.message()


def test_lateness_reads_like_a_person_would_say_it():
    assert [human_duration(s) for s in (4.25, 65, 3720, 90061)] == ["4.2 s", "1 min 5 s", "1 h 2 min", "1 d 1 h"]


def test_the_log_names_the_webhook_by_scheme_and_host_only():
    assert webhook_target(f"https://user:pw@hooks.example.com:8443/t/{TOKEN}?token={TOKEN}") == (
        "https://hooks.example.com:8443")


def test_the_option_is_sensitive_so_airflow_masks_its_value():
    from airflow.configuration import conf

    assert ("artifact_harvest", "deadline_webhook_url") in conf.sensitive_config_values
