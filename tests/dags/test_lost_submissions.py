"""A paid create/start the provider processed but whose answer was lost: exactly one job, never a second.

FlightHub 2 and Qianfan find the job again (in the same try, or in a retry that finds the in-flight marker)
and the run succeeds; MiniMax has no lookup, so the task fails at once and says what to check. Pipelines run
through dag.test() against the emulator (its ``drop_answer`` fault processes the request, then drops the
connection); retries are driven at operator level with the task state store stand-in.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from artifact_harvest.core.idempotency import in_flight_key
from artifact_harvest.flighthub2.hook import FlightHub2Hook
from artifact_harvest.flighthub2.operators import STARTED_STATE, FlightHub2StartReconstructionOperator
from artifact_harvest.minimax.operators import MiniMaxCreateVideoOperator
from artifact_harvest.qianfan.operators import EXPORT_ID_KEY, QianfanCreateModelExportOperator
from support import StateStore, load_dag, task_states
from harvest_emulator.credentials import MINIMAX_API_KEY

PHOTOS = Path(__file__).resolve().parents[2] / "include" / "sample_data" / "flighthub2_photos"
FAST = {"poll_interval": 0.05, "timeout": "PT30S"}
START = "reconstruction/start$"
IN_FLIGHT = {"since": "2026-12-01T10:00:00+00:00"}


@pytest.fixture
def sandbox(airflow_db, emu, archive_root, staging_dir):
    return emu


def wait_for(what: str, predicate, timeout: float = 20) -> None:
    """Poll (each look advances the emulator's poll clock) until ``predicate()``; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"


def output(capfd) -> str:
    out, err = capfd.readouterr()
    return out + err


def qianfan_calls(emu, action: str) -> int:
    return len([r for r in emu.control.requests("^/v2/model$") if r["query"].get("Action") == action])


def qianfan_creates(emu) -> int:
    return qianfan_calls(emu, "CreateModelExportTask")


def upload_resource() -> str:
    from tests.dags.test_flighthub2_dags import upload

    return upload(FlightHub2Hook())


# -- FlightHub 2 -----------------------------------------------------------------------------------------
def test_flighthub2_lost_start_answer_reconciles_and_the_run_succeeds(sandbox, archive_root):
    sandbox.control.add_fault(route=START, kind="drop_answer", times=1)
    run = load_dag("flighthub2_reconstruct_model").test(run_conf={"photos": str(PHOTOS), "model_types": ["3d"], **FAST})
    assert run.state == "success", task_states(run)
    assert len(sandbox.control.requests(START)) == 1  # sent once, never again
    [job] = sandbox.control.jobs("flighthub2")  # exactly one paid job ...
    assert (archive_root / "flighthub2" / job["job_id"] / "manifest.json").exists()  # ... and it was archived
    assert len(sandbox.control.requests("open_model/models/running$")) == 1  # the one reconciliation call


def test_flighthub2_retry_after_a_killed_worker_attaches_without_a_second_start(sandbox):
    resource_uuid = upload_resource()
    FlightHub2Hook().start_reconstruction(resource_uuid, {"3d": {}, "2d": {}})  # processed; the worker then died
    [first] = [j["job_id"] for j in sandbox.control.jobs("flighthub2") if j["data"]["model_type"] == 2]
    store = StateStore()
    store.set(in_flight_key(STARTED_STATE), IN_FLIGHT)
    operator = FlightHub2StartReconstructionOperator(task_id="start", resource_uuid=resource_uuid,
                                                     model_types=["3d", "2d"])
    started = operator.execute({"task_state_store": store})
    assert {m["model_type"] for m in started} == {"3d", "2d"}
    assert {m["model_uuid"] for m in started if m["model_type"] == "3d"} == {first}
    assert len(sandbox.control.requests(START)) == 1 and len(sandbox.control.jobs("flighthub2")) == 2
    assert len(sandbox.control.requests("open_model/models/running$")) == 1  # the one extra call
    assert in_flight_key(STARTED_STATE) not in store.values and store.get(STARTED_STATE)
    operator.execute({"task_state_store": store})  # a later retry keeps re-attaching
    assert len(sandbox.control.requests(START)) == 1


def test_flighthub2_in_flight_but_nothing_running_starts_once(sandbox):
    resource_uuid = upload_resource()
    store = StateStore()
    store.set(in_flight_key(STARTED_STATE), IN_FLIGHT)  # the earlier try died before its start was sent
    operator = FlightHub2StartReconstructionOperator(task_id="start", resource_uuid=resource_uuid, model_types=["3d"])
    operator.execute({"task_state_store": store})
    assert len(sandbox.control.requests(START)) == 1 and len(sandbox.control.jobs("flighthub2")) == 1


def test_flighthub2_stored_job_that_failed_is_not_reattached_unless_allowed(sandbox):
    resource_uuid = upload_resource()
    sandbox.control.push_scenario("flighthub2", outcome="reconstruction_failed", error_code=30177)
    store = StateStore()
    operator = FlightHub2StartReconstructionOperator(task_id="start", resource_uuid=resource_uuid, model_types=["3d"])
    [started] = operator.execute({"task_state_store": store})
    hook = FlightHub2Hook()
    wait_for("the job to fail", lambda: hook.open_model(started["model_uuid"])["model_status"] == 8)
    with pytest.raises(AirflowFailException, match="terminal failure.*30177.*resubmit_failed"):
        operator.execute({"task_state_store": store})
    assert len(sandbox.control.requests(START)) == 1
    allowed = FlightHub2StartReconstructionOperator(task_id="start", resource_uuid=resource_uuid, model_types=["3d"],
                                                    resubmit_failed=True)
    [again] = allowed.execute({"task_state_store": store})
    assert again["model_uuid"] != started["model_uuid"] and len(sandbox.control.requests(START)) == 2


# -- Qianfan ---------------------------------------------------------------------------------------------
def test_qianfan_lost_create_answer_reconciles_and_the_run_succeeds(sandbox, archive_root):
    sandbox.control.add_fault(route="^/v2/model$", query="Action=CreateModelExportTask", kind="drop_answer")
    run = load_dag("qianfan_export_model").test(run_conf={"model_version_id": "amv-lost1", **FAST})
    assert run.state == "success", task_states(run)
    assert qianfan_creates(sandbox) == 1
    [job] = sandbox.control.jobs("qianfan")[-1:]
    assert [j for j in sandbox.control.jobs("qianfan") if j["data"]["model_id"] == "amv-lost1"] == [job]
    assert (archive_root / "qianfan" / job["job_id"] / "manifest.json").exists()


def test_qianfan_retry_after_a_killed_worker_attaches_without_a_second_create(sandbox):
    from artifact_harvest.qianfan.hook import QianfanHook

    export_id = QianfanHook().create_export("amv-killed1")  # processed; the worker died before storing it
    sandbox.control.clear_requests()
    store = StateStore()
    store.set(in_flight_key(EXPORT_ID_KEY), IN_FLIGHT)
    operator = QianfanCreateModelExportOperator(task_id="create", model_id="amv-killed1")
    assert operator.execute({"task_state_store": store})["exportId"] == export_id
    assert qianfan_creates(sandbox) == 0 and store.get(EXPORT_ID_KEY) == export_id
    assert qianfan_calls(sandbox, "DescribeModelExportTask") == 1  # the lookup, instead of a create


def test_qianfan_lost_create_costs_one_extra_describe(sandbox):
    sandbox.control.add_fault(route="^/v2/model$", query="Action=CreateModelExportTask", kind="drop_answer")
    store = StateStore()
    result = QianfanCreateModelExportOperator(task_id="create", model_id="amv-lost2").execute(
        {"task_state_store": store})
    assert store.get(EXPORT_ID_KEY) == result["exportId"]
    assert qianfan_creates(sandbox) == 1
    assert qianfan_calls(sandbox, "DescribeModelExportTask") == 2  # the usual pre-check, plus the lookup


def test_qianfan_stored_export_that_failed_is_not_reattached_unless_allowed(sandbox):
    from artifact_harvest.qianfan.hook import QianfanHook

    sandbox.control.push_scenario("qianfan", outcome="fail")
    store = StateStore()
    operator = QianfanCreateModelExportOperator(task_id="create", model_id="amv-fails1")
    first = operator.execute({"task_state_store": store})["exportId"]
    hook = QianfanHook()
    wait_for("the export to fail", lambda: getattr(hook.describe_export("amv-fails1").state, "value", None) == "Fail")
    with pytest.raises(AirflowFailException, match="terminal failure.*Fail"):
        operator.execute({"task_state_store": store})
    assert qianfan_creates(sandbox) == 1
    allowed = QianfanCreateModelExportOperator(task_id="create", model_id="amv-fails1", resubmit_failed=True)
    assert allowed.execute({"task_state_store": store})["exportId"] != first
    assert qianfan_creates(sandbox) == 2


# -- MiniMax ---------------------------------------------------------------------------------------------
def test_minimax_lost_create_answer_fails_fast_with_what_to_check(sandbox, archive_root, capfd):
    sandbox.control.add_fault(route="/v1/video_generation$", method="POST", kind="drop_answer", times=-1)
    run = load_dag("minimax_generate_video").test(run_conf={"prompt": "a red kite", "model": "T2V-01", **FAST})
    assert run.state == "failed"
    [create] = [ti for ti in run.get_task_instances() if ti.task_id == "create"]
    assert (create.state, create.try_number) == ("failed", 1)  # at once: no Airflow retry
    text = output(capfd)
    assert "may have been accepted" in text and "MiniMax console" in text and "resubmit_if_in_doubt" in text
    assert MINIMAX_API_KEY not in text  # the in-doubt message names the call, never the key
    assert len(sandbox.control.requests("/v1/video_generation$")) == 1
    assert len(sandbox.control.jobs("minimax")) == 1  # one (paid) video, never two


def test_minimax_retry_in_doubt_fails_or_resubmits_on_purpose(sandbox):
    store = StateStore()
    store.set(in_flight_key("minimax_task_id"), IN_FLIGHT)
    operator = MiniMaxCreateVideoOperator(task_id="create", prompt="a kite", model="T2V-01")
    with pytest.raises(AirflowFailException, match="2026-12-01T10:00:00.*no way to look it up.*MiniMax console"):
        operator.execute({"task_state_store": store})
    assert sandbox.control.requests("/v1/video_generation$") == []
    on_purpose = MiniMaxCreateVideoOperator(task_id="create", prompt="a kite", model="T2V-01",
                                            resubmit_if_in_doubt="True")
    task_id = on_purpose.execute({"task_state_store": store})
    assert store.get("minimax_task_id") == task_id and len(sandbox.control.jobs("minimax")) == 1
    assert on_purpose.execute({"task_state_store": store}) == task_id  # stored: re-attaches from now on
    assert len(sandbox.control.requests("/v1/video_generation$")) == 1


def test_minimax_refused_create_is_resent_and_creates_one_video(sandbox):
    sandbox.control.add_fault(route="/v1/video_generation$", kind="envelope", times=2,
                              body={"base_resp": {"status_code": 1002, "status_msg": "rate limit"}})
    store = StateStore()
    MiniMaxCreateVideoOperator(task_id="create", prompt="a kite", model="T2V-01").execute({"task_state_store": store})
    assert len(sandbox.control.requests("/v1/video_generation$")) == 3 and len(sandbox.control.jobs("minimax")) == 1
