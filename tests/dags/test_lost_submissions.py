"""A paid create/start the provider processed but whose answer was lost: exactly one job, never a second.

FlightHub 2 and Qianfan find the job again when it matches exactly (in the same try, or in a retry that finds
the in-flight record) and the run succeeds; anything else (not found, several candidates, no lookup at all:
MiniMax) fails the task at once with what to check, and submits again only on purpose. Pipelines run through
dag.test() against the emulator (its ``drop_answer`` fault processes the request, then drops the connection);
retries are driven at operator level with the task state store stand-in, and a worker that died after its
request was processed is stood in for by sending the request straight through the hook.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from artifact_harvest.core.errors import TransientProviderError
from artifact_harvest.core.idempotency import in_flight_key
from artifact_harvest.flighthub2.hook import FlightHub2Hook
from artifact_harvest.flighthub2.operators import STARTED_STATE, FlightHub2StartReconstructionOperator
from artifact_harvest.minimax.operators import MiniMaxCreateVideoOperator
from artifact_harvest.qianfan.operators import EXPORT_ID_KEY, QianfanCreateModelExportOperator
from tests.support import StateStore, load_dag, task_states
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
RUNNING = "open_model/models/running$"
CLEAR_WORDS = ("plain task Clear", "keep task state", "resubmit_if_in_doubt")


def started_by(emu) -> dict[int, list[dict]]:
    """The emulator's open models grouped by the start request that created them."""
    starts: dict[int, list[dict]] = {}
    for job in emu.control.jobs("flighthub2"):
        starts.setdefault(job["data"]["start_id"], []).append(job["data"] | {"model_uuid": job["job_id"]})
    return starts


def in_flight(resource_uuid: str, types: list[str], before: list[str] = ()) -> dict:
    """The in-flight record a try writes just before its start (what the lookup matches on)."""
    return {**IN_FLIGHT, "resource_uuid": resource_uuid, "model_types": types, "before": list(before), "kept": {}}


def finish(hook: FlightHub2Hook, model_uuid: str) -> None:
    wait_for("the job to finish", lambda: hook.open_model(model_uuid)["zip_status"] == 2)


def test_flighthub2_lost_start_answer_reconciles_and_the_run_succeeds(sandbox, archive_root):
    sandbox.control.add_fault(route=START, kind="drop_answer", times=1)
    run = load_dag("flighthub2_reconstruct_model").test(run_conf={"photos": str(PHOTOS), "model_types": ["3d"], **FAST})
    assert run.state == "success", task_states(run)
    assert len(sandbox.control.requests(START)) == 1  # sent once, never again
    [job] = sandbox.control.jobs("flighthub2")  # exactly one paid job ...
    assert (archive_root / "flighthub2" / job["job_id"] / "manifest.json").exists()  # ... and it was archived
    # the snapshot before the start (empty list: one page) and the lookup (one job: a page, then an empty one)
    assert len(sandbox.control.requests(RUNNING)) == 3


def test_flighthub2_retry_after_a_killed_worker_attaches_without_a_second_start(sandbox):
    resource_uuid = upload_resource()
    FlightHub2Hook().start_reconstruction(resource_uuid, {"3d": {}, "2d": {}})  # processed; the worker then died
    [first] = [j["job_id"] for j in sandbox.control.jobs("flighthub2") if j["data"]["model_type"] == 2]
    store = StateStore()
    store.set(in_flight_key(STARTED_STATE), in_flight(resource_uuid, ["3d", "2d"]))
    operator = FlightHub2StartReconstructionOperator(task_id="start", resource_uuid=resource_uuid,
                                                     model_types=["3d", "2d"])
    started = operator.execute({"task_state_store": store})
    assert {m["model_type"] for m in started} == {"3d", "2d"}
    assert {m["model_uuid"] for m in started if m["model_type"] == "3d"} == {first}
    assert len(sandbox.control.requests(START)) == 1 and len(sandbox.control.jobs("flighthub2")) == 2
    assert len(sandbox.control.requests(RUNNING)) == 2  # the lookup: one page, then an empty one
    assert in_flight_key(STARTED_STATE) not in store.values and store.get(STARTED_STATE)
    operator.execute({"task_state_store": store})  # a later retry keeps re-attaching
    assert len(sandbox.control.requests(START)) == 1


def test_flighthub2_lost_start_whose_job_finished_before_the_retry_looked_fails_in_doubt(sandbox):
    """The lost answer is stood in for by a start sent straight through the hook (the worker then died)."""
    resource_uuid = upload_resource()
    hook = FlightHub2Hook()
    model_uuid = hook.start_reconstruction(resource_uuid, {"2d": {}})["2d"]
    finish(hook, model_uuid)  # a small 2D job can end within heartbeat timeout + retry_delay
    store = StateStore()
    store.set(in_flight_key(STARTED_STATE), in_flight(resource_uuid, ["2d"]))
    operator = FlightHub2StartReconstructionOperator(task_id="start", resource_uuid=resource_uuid, model_types=["2d"])
    with pytest.raises(AirflowFailException) as info:
        operator.execute({"task_state_store": store})
    text = str(info.value)
    assert "2026-12-01T10:00:00" in text and "finds no job that matches" in text
    assert resource_uuid in text and "2d" in text and "open_model/models/running" in text
    assert all(word in text for word in CLEAR_WORDS)
    assert len(sandbox.control.requests(START)) == 1  # never started again
    assert store.get(in_flight_key(STARTED_STATE)) is not None  # the next try (keep task state) looks again


def test_flighthub2_run_whose_lost_start_cannot_be_matched_fails_at_once_with_what_to_check(sandbox, capfd):
    sandbox.control.configure(polls_per_stage=0, stage_seconds=0.01)  # the job ends in 0.05 s ...
    sandbox.control.add_fault(route=START, kind="drop_answer", seconds=0.5, times=1)  # ... before the lookup
    run = load_dag("flighthub2_reconstruct_model").test(run_conf={"photos": str(PHOTOS), "model_types": ["2d"], **FAST})
    assert run.state == "failed"
    [start] = [ti for ti in run.get_task_instances() if ti.task_id == "start_reconstruction"]
    assert (start.state, start.try_number) == ("failed", 1)  # at once: no Airflow retry
    text = output(capfd)
    assert "may have been accepted" in text and "open_model/models/running" in text
    assert all(word in text for word in CLEAR_WORDS)
    assert len(sandbox.control.requests(START)) == 1 and len(sandbox.control.jobs("flighthub2")) == 1


def test_flighthub2_in_doubt_starts_again_only_on_purpose(sandbox):
    resource_uuid = upload_resource()
    store = StateStore()
    store.set(in_flight_key(STARTED_STATE), in_flight(resource_uuid, ["3d"]))  # nothing runs: not found
    operator = FlightHub2StartReconstructionOperator(task_id="start", resource_uuid=resource_uuid, model_types=["3d"])
    with pytest.raises(AirflowFailException, match="no job that matches"):
        operator.execute({"task_state_store": store})
    assert sandbox.control.requests(START) == []
    on_purpose = FlightHub2StartReconstructionOperator(task_id="start", resource_uuid=resource_uuid,
                                                       model_types=["3d"], resubmit_if_in_doubt="True")
    [started] = on_purpose.execute({"task_state_store": store})
    assert len(sandbox.control.requests(START)) == 1 and store.get(STARTED_STATE) == {"3d": started["model_uuid"]}


def test_flighthub2_lost_start_found_on_page_two_of_a_busy_project(sandbox):
    sandbox.control.configure(flighthub2_page_size=2)
    hook = FlightHub2Hook()
    busy = upload_resource()
    hook.start_reconstruction(busy, {"2d": {}, "3d": {}})  # another workload: three running jobs, page 1 full
    hook.start_reconstruction(busy, {"lidar": {}})
    resource_uuid = upload_resource()
    sandbox.control.clear_requests()
    sandbox.control.add_fault(route=START, kind="drop_answer", times=1)
    operator = FlightHub2StartReconstructionOperator(task_id="start", resource_uuid=resource_uuid, model_types=["3d"])
    store = StateStore()
    [started] = operator.execute({"task_state_store": store})
    [ours] = started_by(sandbox)[max(started_by(sandbox))]
    assert started["model_uuid"] == ours["model_uuid"] and ours["resource_uuid"] == resource_uuid
    assert len(sandbox.control.requests(START)) == 1  # exactly one start
    pages = [r["query"].get("page") for r in sandbox.control.requests(RUNNING)]
    assert pages == ["1", "2", "3"] * 2  # snapshot: 3 jobs; lookup: 4 (ours 4th: page 2); each ends on an empty page


def test_flighthub2_two_runs_on_one_resource_each_get_their_own_job(sandbox):
    resource_uuid = upload_resource()
    run_a, run_b = StateStore(), StateStore()
    operator = FlightHub2StartReconstructionOperator(task_id="start", resource_uuid=resource_uuid, model_types=["3d"])
    [a] = operator.execute({"task_state_store": run_a})
    sandbox.control.add_fault(route=START, kind="drop_answer", times=1)
    [b] = operator.execute({"task_state_store": run_b})  # run B's answer is lost; A's job still runs
    starts = started_by(sandbox)
    assert len(sandbox.control.requests(START)) == 2 and len(starts) == 2  # exactly one start each
    first, second = (starts[k][0]["model_uuid"] for k in sorted(starts))
    assert (a["model_uuid"], b["model_uuid"]) == (first, second)  # neither run holds the other's model
    assert run_a.get(STARTED_STATE) == {"3d": first} and run_b.get(STARTED_STATE) == {"3d": second}


def test_flighthub2_two_new_candidates_are_in_doubt(sandbox):
    """Another run's start on the same resource landed after this run's snapshot: the lookup cannot tell."""
    resource_uuid = upload_resource()
    hook = FlightHub2Hook()
    hook.start_reconstruction(resource_uuid, {"3d": {}})  # ours (answer lost) ...
    hook.start_reconstruction(resource_uuid, {"3d": {}})  # ... and another run's, both after the snapshot
    store = StateStore()
    store.set(in_flight_key(STARTED_STATE), in_flight(resource_uuid, ["3d"]))
    operator = FlightHub2StartReconstructionOperator(task_id="start", resource_uuid=resource_uuid, model_types=["3d"])
    with pytest.raises(AirflowFailException, match="cannot tell which job"):
        operator.execute({"task_state_store": store})
    assert store.get(STARTED_STATE) is None and len(sandbox.control.requests(START)) == 2


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


def test_flighthub2_resubmit_failed_starts_only_the_failed_type(sandbox):
    resource_uuid = upload_resource()
    sandbox.control.push_scenario("flighthub2", outcomes={"2d": "reconstruction_failed"})
    store = StateStore()
    kwargs = dict(task_id="start", resource_uuid=resource_uuid, model_types=["3d", "2d"],
                  parameters={"3d": {"quality": "high"}, "2d": {"gsd": 2}})
    first = {m["model_type"]: m["model_uuid"] for m in
             FlightHub2StartReconstructionOperator(**kwargs).execute({"task_state_store": store})}
    hook = FlightHub2Hook()
    wait_for("2D to fail", lambda: hook.open_model(first["2d"])["model_status"] == 8)
    finish(hook, first["3d"])
    again = {m["model_type"]: m["model_uuid"] for m in
             FlightHub2StartReconstructionOperator(resubmit_failed=True, **kwargs).execute({"task_state_store": store})}
    assert again["3d"] == first["3d"] and again["2d"] != first["2d"]  # 3D keeps its (paid) job
    starts = started_by(sandbox)
    assert len(sandbox.control.requests(START)) == 2 and len(starts) == 2
    [second] = starts[max(starts)]  # the second start carried parameter_2d only
    assert (second["model_type"], second["parameters"], second["model_uuid"]) == (1, '{"gsd":2}', again["2d"])
    assert store.get(STARTED_STATE) == again
    assert FlightHub2StartReconstructionOperator(resubmit_failed=True, **kwargs).execute(
        {"task_state_store": store}) == [{"model_type": t, "model_uuid": again[t]} for t in ("3d", "2d")]
    assert len(sandbox.control.requests(START)) == 2  # a later try re-attaches to both


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
    assert qianfan_calls(sandbox, "DescribeModelExportTask") == 2  # the lookup and its state, instead of a create


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


def lost_create_whose_export_failed(emu, model_id: str) -> StateStore:
    """A create processed but unanswered (the worker died), whose export then failed and is no longer listed."""
    from artifact_harvest.qianfan.hook import QianfanHook

    hook = QianfanHook()
    emu.control.push_scenario("qianfan", outcome="vanish")
    hook.create_export(model_id)
    wait_for("the failed export to be left out", lambda: not hook.describe_export(model_id).has_record)
    store = StateStore()
    store.set(in_flight_key(EXPORT_ID_KEY), {**IN_FLIGHT, "model_id": model_id, "listed": ""})
    return store


def test_qianfan_lost_create_whose_export_failed_is_not_created_again(sandbox):
    store = lost_create_whose_export_failed(sandbox, "amv-lostfail1")
    operator = QianfanCreateModelExportOperator(task_id="create", model_id="amv-lostfail1")
    with pytest.raises(AirflowFailException) as info:
        operator.execute({"task_state_store": store})
    text = str(info.value)
    assert "amv-lostfail1" in text and "leaves failed exports out" in text and "resubmit_failed" in text
    assert all(word in text for word in CLEAR_WORDS)
    assert qianfan_creates(sandbox) == 1 and store.get(EXPORT_ID_KEY) is None


def test_qianfan_lost_create_whose_export_failed_is_created_once_more_when_allowed(sandbox):
    store = lost_create_whose_export_failed(sandbox, "amv-lostfail2")
    operator = QianfanCreateModelExportOperator(task_id="create", model_id="amv-lostfail2", resubmit_failed="True")
    export_id = operator.execute({"task_state_store": store})["exportId"]
    assert qianfan_creates(sandbox) == 2 and store.get(EXPORT_ID_KEY) == export_id
    assert operator.execute({"task_state_store": store})["exportId"] == export_id  # and never a third
    assert qianfan_creates(sandbox) == 2


def test_qianfan_lost_create_whose_export_shows_fail_is_a_terminal_failure(sandbox):
    """The docs also list a Fail state: a lost create's export seen in it is ours, failed."""
    from artifact_harvest.qianfan.hook import QianfanHook

    hook = QianfanHook()
    sandbox.control.push_scenario("qianfan", outcome="fail")
    export_id = hook.create_export("amv-lostfail3")
    wait_for("the export to fail", lambda: hook.describe_export("amv-lostfail3").state.value == "Fail")
    store = StateStore()
    store.set(in_flight_key(EXPORT_ID_KEY), {**IN_FLIGHT, "model_id": "amv-lostfail3", "listed": ""})
    operator = QianfanCreateModelExportOperator(task_id="create", model_id="amv-lostfail3")
    with pytest.raises(AirflowFailException, match=f"{export_id}.*terminal failure.*resubmit_failed"):
        operator.execute({"task_state_store": store})
    assert qianfan_creates(sandbox) == 1 and store.get(EXPORT_ID_KEY) == export_id  # found, kept, not re-created


def test_qianfan_export_replaced_by_another_runs_forced_export_archives_the_newer_one(sandbox, archive_root):
    from artifact_harvest.qianfan.hook import QianfanHook
    from artifact_harvest.qianfan.operators import QianfanDownloadExportOperator

    hook = QianfanHook()
    run_1 = StateStore()
    ours = QianfanCreateModelExportOperator(task_id="create", model_id="amv-forced1").execute(
        {"task_state_store": run_1})["exportId"]
    wait_for("run 1's export to be done", lambda: hook.describe_export("amv-forced1").state.value == "Done")
    newer = QianfanCreateModelExportOperator(task_id="create", model_id="amv-forced1", force_new_export=True).execute(
        {"task_state_store": StateStore()})["exportId"]  # run 2
    assert newer != ours and qianfan_creates(sandbox) == 2
    download = QianfanDownloadExportOperator(task_id="download_and_archive", model_id="amv-forced1", export_id=ours)
    with pytest.raises(TransientProviderError, match=f"replaced by export {newer}, which is still being packaged"):
        download.execute({"task_state_store": StateStore()})  # run 2's export is Doing: a retry will archive it
    # run 1 retries its create step: replaced is not failed, it goes on with the newer export
    assert QianfanCreateModelExportOperator(task_id="create", model_id="amv-forced1").execute(
        {"task_state_store": run_1})["exportId"] == newer
    assert hook.describe_export("amv-forced1").state.value == "Done"
    manifest = download.execute({"task_state_store": StateStore()})
    assert manifest["source"] == {"modelId": "amv-forced1", "exportId": newer, "replacesExportId": ours}
    assert (archive_root / "qianfan" / newer / "manifest.json").exists()
    assert not (archive_root / "qianfan" / ours).exists()
    assert qianfan_creates(sandbox) == 2  # one create per run, as the policy allows (run 2 forced its own)


# -- MiniMax ---------------------------------------------------------------------------------------------
def test_minimax_lost_create_answer_fails_fast_with_what_to_check(sandbox, archive_root, capfd):
    sandbox.control.add_fault(route="/v1/video_generation$", method="POST", kind="drop_answer", times=-1)
    run = load_dag("minimax_generate_video").test(run_conf={"prompt": "a red kite", "model": "T2V-01", **FAST})
    assert run.state == "failed"
    [create] = [ti for ti in run.get_task_instances() if ti.task_id == "create"]
    assert (create.state, create.try_number) == ("failed", 1)  # at once: no Airflow retry
    text = output(capfd)
    assert "may have been accepted" in text and "MiniMax console" in text
    assert all(word in text for word in CLEAR_WORDS)
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
