"""A Celery worker SIGKILLed after FlightHub 2 processed a start and before the model uuid was stored.

The emulator processes the start, then holds its answer (``drop_answer`` with a delay): the window in which
the worker dies. The scheduler notices the dead task and retries it; the retry finds the "in flight" marker
without an id, looks the job up in ``open_model/models/running`` (the job was not running on the resource
before the start, so it matches exactly) and attaches to it. Exactly one start is
sent, exactly one job exists, and the run archives that job's model.
"""

from __future__ import annotations

import time

import pytest
from harvest_emulator.flighthub2 import SAMPLE_PHOTOS

from tests.distributed.test_celery_stack import verified_manifests, wait_until

pytestmark = pytest.mark.distributed

DAG_ID = "flighthub2_reconstruct_model"
START = "reconstruction/start$"


def test_worker_killed_between_start_and_storing_the_id_reattaches(stack):
    control = stack.emulator.control
    control.reset()
    # jobs stay queued/running for minutes, so the retry (after the heartbeat timeout and the retry delay) still
    # finds the job in the running list; the clock is sped up once the start step is done
    control.configure(polls_per_stage=0, stage_seconds=300)
    stack.api.wait_for_dags([DAG_ID], timeout=120)
    stack.api.unpause(DAG_ID)
    control.add_fault(route=START, kind="drop_answer", seconds=120, times=1)
    run_id = stack.api.trigger(DAG_ID, {"photos": SAMPLE_PHOTOS, "model_types": ["3d"], "poll_interval": 0.5, "timeout": "PT10M"})
    try:
        wait_until("the emulator to process the start", lambda: control.jobs("flighthub2"), timeout=180)
        stack.kill("celery-worker")  # the answer is still held: the id was never stored
        killed_at = time.time()
        stack.start("celery-worker")

        def start_task() -> dict | None:
            tis = {ti["task_id"]: ti for ti in stack.api.task_instances(DAG_ID, run_id)}
            ti = tis.get("start_reconstruction")
            assert ti is None or ti["state"] not in ("failed", "upstream_failed"), ti
            return ti if ti and ti["state"] == "success" else None

        ti = wait_until("the retried start step to succeed", start_task, timeout=300, interval=1)
        assert ti["try_number"] >= 2, ti  # the killed try, then the retry that reconciled
        control.configure(stage_seconds=0.2)  # let the one job finish
        assert stack.api.wait_for_run(DAG_ID, run_id, timeout=300) == "success"
    finally:
        control.clear_faults()

    assert len(control.requests(START)) == 1, "the start was sent again"
    [job] = control.jobs("flighthub2")  # exactly one paid job
    lookups = [r for r in control.requests("open_model/models/running$") if r["time"] > killed_at]
    # the retry looked it up once (one page, then the empty page that ends the list), then attached
    assert [r["query"].get("page") for r in lookups] == ["1", "2"], lookups
    manifests = [m for m in verified_manifests(stack.archive) if m["run_id"] == run_id]
    assert [m["artifact_key"] for m in manifests] == [job["job_id"]]
    control.reset()
