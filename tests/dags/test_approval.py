"""require_approval on the paid DAGs with dag.test() against the emulator: off, the approval is skipped and the
run is unchanged; on, the run waits, shows what will be sent and what it uses, and Approve sends it while Reject
sends nothing.

A person's answer is recorded the way the API server records it (``hitl_detail`` + ``handle_event_submit``) from
a thread, while ``dag.test()`` keeps the run alive; the browser tier clicks the real buttons
(tests/browser/test_approval.py).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

# imported before any thread starts: two threads importing Airflow's models at once deadlock on SQLAlchemy's lock
from airflow._shared.timezones import timezone
from airflow.models.hitl import HITLDetail
from airflow.models.taskinstance import TaskInstance
from airflow.models.trigger import handle_event_submit
from airflow.triggers.base import TriggerEvent
from airflow.utils.session import create_session
from airflow.utils.state import TaskInstanceState
from tests.support import load_dag, task_states

PHOTOS = Path(__file__).resolve().parents[2] / "include" / "sample_data" / "flighthub2_photos"
FAST = {"poll_interval": 0.05, "timeout": "PT30S"}


@pytest.fixture
def sandbox(airflow_db, emu, archive_root, staging_dir):
    return emu


class Responder(threading.Thread):
    """Waits for ``dag_id``'s approve task to await input, keeps its subject and body, answers ``option``."""

    def __init__(self, dag_id: str, option: str, timeout: float = 120) -> None:
        super().__init__(daemon=True)
        self.dag_id, self.option, self.timeout = dag_id, option, timeout
        self.subject: str | None = None
        self.body: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._answer()
        except BaseException as exc:  # noqa: BLE001 - reported by the test's assertion
            self.error = exc

    def _answer(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with create_session() as session:
                ti = session.scalar(select(TaskInstance).where(
                    TaskInstance.dag_id == self.dag_id, TaskInstance.task_id == "approve",
                    TaskInstance.state == TaskInstanceState.AWAITING_INPUT))
                detail = ti and session.scalar(select(HITLDetail).where(HITLDetail.ti_id == ti.id))
                if detail is not None:
                    self.subject, self.body = detail.subject, detail.body
                    detail.responded_by = {"id": "tester", "name": "tester"}
                    detail.responded_at = timezone.utcnow()
                    detail.chosen_options = [self.option]
                    detail.params_input = {}
                    handle_event_submit(TriggerEvent(detail.as_resume_event_payload()), task_instance=ti,
                                        session=session)
                    return
            time.sleep(0.2)
        raise AssertionError(f"{self.dag_id}: no approval awaited input within {self.timeout} s")


def run_answered(dag_id: str, conf: dict, option: str):
    """``dag.test()`` with ``require_approval``, answered ``option``; returns the run and the responder."""
    dag = load_dag(dag_id)
    responder = Responder(dag_id, option)
    responder.start()
    run = dag.test(run_conf={**conf, "require_approval": True})
    responder.join(timeout=5)
    assert responder.error is None, responder.error
    return run, responder


def test_off_by_default_the_approval_is_skipped_without_waiting(sandbox):
    run = load_dag("qianfan_export_model").test(run_conf={"model_version_id": "amv-off1", **FAST})
    states = task_states(run)
    assert run.state == "success", states
    assert states["approve"] == "skipped" and states["create_export"] == "success"


def test_rejected_video_sends_nothing(sandbox, archive_root):
    conf = {"prompt": "a red kite over the sea", "model": "T2V-01", **FAST}
    run, responder = run_answered("minimax_generate_video", conf, "Reject")
    states = task_states(run)
    assert run.state == "success" and states["approve"] == "success"  # a decision, not a failure
    assert {states[t] for t in ("create", "wait", "retrieve", "download_and_archive")} == {"skipped"}, states
    assert sandbox.control.requests("video_generation") == [] and sandbox.control.jobs("minimax") == []
    assert not (archive_root / "minimax").exists()
    # what the person was shown: what will be sent and what it uses
    assert "Model: T2V-01" in responder.body and "Duration: 6 seconds" in responder.body
    assert "Prompt: 23 characters" in responder.body and "MiniMax video: 6 seconds" in responder.body
    assert responder.subject == "Generate a MiniMax video (T2V-01, 6 s)? It is paid."


def test_approved_export_is_sent_once(sandbox):
    run, responder = run_answered("qianfan_export_model", {"model_version_id": "amv-ok1", **FAST}, "Approve")
    states = task_states(run)
    assert run.state == "success", states
    assert states["approve"] == "success" and states["download_and_archive"] == "success"
    creates = [r for r in sandbox.control.requests("/v2/model") if r["query"].get("Action") == "CreateModelExportTask"]
    assert len(creates) == 1
    assert "Model version: amv-ok1" in responder.body and "A Qianfan export" in responder.body


def test_approved_speech_shows_the_characters(sandbox):
    text = "hello there, general listener"
    run, responder = run_answered("minimax_generate_speech", {"text": text, **FAST}, "Approve")
    assert run.state == "success", task_states(run)
    assert f"MiniMax speech: {len(text)} characters" in responder.body
    assert len(sandbox.control.requests("t2a_async_v2")) >= 1 and len(sandbox.control.jobs("minimax")) == 1


def test_rejected_reconstruction_uploads_and_starts_nothing(sandbox):
    conf = {"photos": str(PHOTOS), "model_types": ["2d", "3d"], **FAST}
    run, responder = run_answered("flighthub2_reconstruct_model", conf, "Reject")
    states = task_states(run)
    assert states["upload_photos"] == "skipped" and states["start_reconstruction"] == "skipped", states
    assert sandbox.control.requests("obtain_token") == [] and sandbox.control.requests("reconstruction/start") == []
    assert "Image count: 5" in responder.body and "Model types: 2d, 3d" in responder.body
    assert "FlightHub 2 image quota: 5 images × 2 model types = 10 images" in responder.body


def test_an_impossible_request_fails_before_anyone_is_asked(sandbox):
    """3DGS needs at least 10 images: the approval step fails (no retries) and nothing is sent."""
    run = load_dag("flighthub2_reconstruct_model").test(
        run_conf={"photos": str(PHOTOS), "model_types": ["3dgs"], "require_approval": True, **FAST})
    states = task_states(run)
    assert run.state == "failed" and states["approve"] == "failed", states
    assert states["upload_photos"] == "upstream_failed"
    assert sandbox.control.requests("obtain_token") == [] and sandbox.control.requests("reconstruction") == []
