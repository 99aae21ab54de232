"""Qianfan export trigger, sensor and create operator against the emulator: every outcome, reuse, retries."""

from __future__ import annotations

import importlib
import time
from typing import Any

import pytest
from airflow.sdk import PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from artifact_harvest.qianfan.hook import QianfanHook
from artifact_harvest.qianfan.operators import EXPORT_ID_KEY, QianfanCreateModelExportOperator
from artifact_harvest.qianfan.sensors import QianfanModelExportSensor
from artifact_harvest.qianfan.triggers import QianfanModelExportTrigger
from tests.support import StateStore
from harvest_emulator.qianfan import DEFAULT_SIZE, SEEDED_EXPORT_ID, SEEDED_MODEL_ID


async def events(trigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


def trigger(model_id: str, export_id: str | None = None, *, deadline: float = 10, grace: float = 0.2,
            max_transient_errors: int = 2) -> QianfanModelExportTrigger:
    return QianfanModelExportTrigger(model_id=model_id, export_id=export_id, missing_grace_seconds=grace,
                                     end_time=time.time() + deadline, poll_interval=0.05,
                                     max_transient_errors=max_transient_errors)


def start(emu, model_id: str, **scenario) -> str:
    if scenario:
        emu.control.push_scenario("qianfan", **scenario)
    return QianfanHook().create_export(model_id)


def creates(emu) -> int:
    return sum(r["query"].get("Action") == "CreateModelExportTask" for r in emu.control.requests("/v2/model"))


@pytest.mark.parametrize("state_field", ["state", "status"])
@pytest.mark.parametrize("case", ["lower", "title"])
async def test_doing_then_done_in_every_documented_spelling(emu, state_field, case):
    export_id = start(emu, "amv-t1", state_field=state_field, case=case)
    [event] = await events(trigger("amv-t1", export_id))
    assert event["status"] == "success"
    assert {k: event[k] for k in ("modelId", "exportId", "fileSize")} == {
        "modelId": "amv-t1", "exportId": export_id, "fileSize": event["fileSize"]}
    assert event["fileSize"] >= DEFAULT_SIZE - 4096 and len(event["md5"]) == 32
    assert event["fileName"].endswith(".tar")
    assert not any("http" in str(value) for value in event.values())  # never the signed URL


async def test_fail_fails_fast(emu):
    export_id = start(emu, "amv-t2", outcome="fail")
    [event] = await events(trigger("amv-t2", export_id, deadline=30))
    assert event["status"] == "failed" and export_id in event["message"] and "Fail" in event["message"]


async def test_vanished_export_fails_after_the_grace_period(emu):
    export_id = start(emu, "amv-t3", outcome="vanish")
    began = time.monotonic()
    [event] = await events(trigger("amv-t3", export_id, deadline=30, grace=0.3))
    assert event["status"] == "failed" and "disappeared" in event["message"]
    assert time.monotonic() - began >= 0.3


async def test_vanish_is_detected_without_export_id_once_doing_was_seen(emu):
    start(emu, "amv-t4", outcome="vanish")
    [event] = await events(trigger("amv-t4", None, deadline=30, grace=0.1))
    assert event["status"] == "failed"


async def test_vanished_export_with_an_older_done_one_is_not_taken_for_ours(emu):
    older = start(emu, "amv-t5")
    states = [QianfanHook().describe_export("amv-t5").state.value for _ in range(2)]
    assert states == ["Doing", "Done"]  # the older export is finished and stays listed
    ours = start(emu, "amv-t5", outcome="vanish")
    [event] = await events(trigger("amv-t5", ours, deadline=30, grace=0.1))
    assert event["status"] == "failed" and ours in event["message"] and older != ours


async def test_never_finishing_export_times_out(emu):
    export_id = start(emu, "amv-t6", outcome="never")
    [event] = await events(trigger("amv-t6", export_id, deadline=0.4))
    assert event["status"] == "timeout" and export_id in event["message"]


async def test_transient_errors_are_tolerated_then_bounded(emu):
    export_id = start(emu, "amv-t7")
    emu.control.add_fault("/v2/model", "status", status=503, times=5)  # 5 = the client's retry budget: one poll lost
    [event] = await events(trigger("amv-t7", export_id))
    assert event["status"] == "success"
    emu.control.add_fault("/v2/model", "status", status=503, times=-1)
    [event] = await events(trigger("amv-t7", export_id, max_transient_errors=0))
    assert event["status"] == "error" and event["retryable"] is True


async def test_auth_error_ends_the_trigger_as_not_retryable(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_QF_BAD", f'{{"conn_type": "qianfan", "host": "{emu.url}", '
                       '"login": "QfUnknownAccessKey0000000000", "password": "QfWhatever00000000"}')
    bad = QianfanModelExportTrigger(model_id="amv-t8", conn_id="qf_bad", end_time=time.time() + 10, poll_interval=0.05)
    [event] = await events(bad)
    assert event["status"] == "error" and event["retryable"] is False and event["code"] == "InvalidAccessKeyId"


def test_serialize_round_trip():
    original = trigger("amv-s1", "amve-s1", grace=42)
    path, kwargs = original.serialize()
    module, name = path.rsplit(".", 1)
    clone = getattr(importlib.import_module(module), name)(**kwargs)
    assert clone.serialize() == (path, kwargs)
    assert kwargs["missing_grace_seconds"] == 42 and kwargs["export_id"] == "amve-s1"
    assert path == "artifact_harvest.qianfan.triggers.QianfanModelExportTrigger"


def context(store: StateStore | None = None) -> dict[str, Any]:
    return {"task_state_store": store or StateStore()}


def test_sensor_defers_with_the_export_ids_then_succeeds_without_deferring_when_done(emu):
    export_id = start(emu, "amv-s2")
    sensor = QianfanModelExportSensor(task_id="wait", model_id="amv-s2", export_id=export_id,
                                      poll_interval="0.05", wait_timeout="5")
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(context())  # first describe: Doing
    deferred = info.value.trigger
    assert isinstance(deferred, QianfanModelExportTrigger)
    assert (deferred.export_id, deferred.poll_interval) == (export_id, 0.05)
    assert deferred.end_time <= time.time() + 5
    result = sensor.execute(context())  # second describe: Done
    assert result["exportId"] == export_id and "downloadUrl" not in result


def test_sensor_poke_mode_fail_and_vanish(emu):
    failing = start(emu, "amv-s3", outcome="fail")
    sensor = QianfanModelExportSensor(task_id="w", model_id="amv-s3", export_id=failing, deferrable=False)
    store = StateStore()
    assert sensor.poke(context(store)) is False  # Doing
    with pytest.raises(AirflowFailException, match="Fail"):
        sensor.poke(context(store))

    vanishing = start(emu, "amv-s4", outcome="vanish")
    sensor = QianfanModelExportSensor(task_id="w", model_id="amv-s4", export_id=vanishing, deferrable=False,
                                      missing_grace_seconds=0.2)
    store, deadline = StateStore(), time.monotonic() + 10
    with pytest.raises(AirflowFailException, match="disappeared"):
        while time.monotonic() < deadline:
            sensor.poke(context(store))
    assert store.values["qianfan_vanish_watch"]["missing_since"] is not None


def test_sensor_poke_mode_done_hands_on_file_facts(emu):
    sensor = QianfanModelExportSensor(task_id="w", model_id=SEEDED_MODEL_ID, export_id=SEEDED_EXPORT_ID,
                                      deferrable=False)
    result = sensor.poke(context())
    assert isinstance(result, PokeReturnValue) and result.is_done
    assert result.xcom_value["exportId"] == SEEDED_EXPORT_ID and set(result.xcom_value) == {
        "modelId", "exportId", "fileName", "fileSize", "md5"}


def create_op(model_id: str, force: bool | str = False) -> QianfanCreateModelExportOperator:
    return QianfanCreateModelExportOperator(task_id="create", model_id=model_id, force_new_export=force)


def test_done_export_is_reused(emu):
    assert create_op(SEEDED_MODEL_ID).execute(context()) == {"modelId": SEEDED_MODEL_ID, "exportId": SEEDED_EXPORT_ID,
                                                           "listedBefore": None}  # reused: nothing created
    assert creates(emu) == 0


def test_force_creates_a_new_export_despite_a_done_one(emu):
    result = create_op(SEEDED_MODEL_ID, force="True").execute(context())
    assert result["exportId"] != SEEDED_EXPORT_ID and creates(emu) == 1


def test_running_export_is_attached_even_when_forced(emu):
    emu.control.push_scenario("qianfan", outcome="never")
    first = create_op("amv-o1").execute(context())["exportId"]
    second = create_op("amv-o1", force=True).execute(context())["exportId"]
    assert first == second and creates(emu) == 1


def test_a_retried_task_never_creates_a_second_export(emu):
    store = StateStore()
    first = create_op("amv-o2", force=True).execute(context(store))
    again = create_op("amv-o2", force=True).execute(context(store))
    assert first == again and store.values[EXPORT_ID_KEY] == first["exportId"] and creates(emu) == 1


def test_force_flag_must_be_a_boolean(emu):
    with pytest.raises(AirflowFailException, match="force_new_export"):
        create_op("amv-o3", force="maybe").execute(context())


async def test_an_export_replaced_before_the_wait_saw_it_done_is_followed_to_the_newer_one(emu):
    """Run 1's export is done, then another run's forced create replaces it before run 1's wait looks: the
    wait follows the newer export (not listed before run 1's create) and ends on it, with exactly one event."""
    hook = QianfanHook()
    run_1 = QianfanCreateModelExportOperator(task_id="create", model_id="amv-repl1").execute(
        {"task_state_store": StateStore()})
    assert run_1["listedBefore"] == ""  # nothing was listed before run 1's create
    ours = run_1["exportId"]
    deadline = time.monotonic() + 20
    while hook.describe_export("amv-repl1").state.value != "Done":  # each look advances the emulator's clock
        assert time.monotonic() < deadline, "run 1's export never finished"
    emu.control.push_scenario("qianfan", polls_per_stage=3)  # the newer one is Doing for a few polls
    newer = QianfanCreateModelExportOperator(task_id="create", model_id="amv-repl1", force_new_export=True).execute(
        {"task_state_store": StateStore()})["exportId"]
    assert newer != ours and hook.describe_export("amv-repl1").export_id == newer
    waiting = QianfanModelExportTrigger(model_id="amv-repl1", export_id=ours, listed_before=run_1["listedBefore"],
                                        missing_grace_seconds=0, end_time=time.time() + 20, poll_interval=0.05)
    [event] = await events(waiting)
    assert event["status"] == "success", event
    assert (event["exportId"], event["replacesExportId"]) == (newer, ours)
    assert creates(emu) == 2  # one per run


async def test_the_export_listed_before_ours_showing_again_fails_after_the_grace(emu):
    """Ours failed and Describe (which hides failed exports) shows the version's older export again: ours is gone."""
    older = start(emu, "amv-repl2")
    wait_done = QianfanModelExportTrigger(model_id="amv-repl2", export_id=older, end_time=time.time() + 20,
                                          poll_interval=0.05)
    assert (await events(wait_done))[0]["status"] == "success"
    ours = start(emu, "amv-repl2", outcome="fail")
    waiting = QianfanModelExportTrigger(model_id="amv-repl2", export_id=ours, listed_before=older,
                                        missing_grace_seconds=0.2, end_time=time.time() + 20, poll_interval=0.05)
    [event] = await events(waiting)
    assert event["status"] == "failed" and ours in event["message"], event
