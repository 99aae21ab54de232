"""Triggers and sensors against the emulator: each outcome, timeout, transient errors, on_kill, serialization."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout, TaskDeferred

from artifact_harvest.flighthub2.hook import FlightHub2Hook
from artifact_harvest.flighthub2.sensors import FlightHub2DownloadUrlSensor, FlightHub2ModelReadySensor
from artifact_harvest.flighthub2.triggers import FlightHub2DownloadUrlTrigger, FlightHub2ModelReadyTrigger
from harvest_emulator.credentials import FLIGHTHUB2_PROJECT_UUID, FLIGHTHUB2_TOKEN

from tests.integration.flighthub2.test_hook import upload


def start(model_type: str = "3d") -> str:
    hook = FlightHub2Hook()
    return hook.start_reconstruction(upload(hook), {model_type: {}})[model_type]


def model_trigger(model_uuid: str, seconds: float = 10, **kwargs) -> FlightHub2ModelReadyTrigger:
    return FlightHub2ModelReadyTrigger(model_uuid=model_uuid, end_time=time.time() + seconds, poll_interval=0.05,
                                       **kwargs)


async def events(trigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


@pytest.mark.parametrize("model_type, success_status", [("3d", 15), ("2d", 9)])
async def test_model_ready_success_once_reconstructed_and_zipped(emu, model_type, success_status):
    model_uuid = start(model_type)
    [event] = await events(model_trigger(model_uuid))
    assert event["status"] == "success" and event["model_uuid"] == model_uuid
    details = FlightHub2Hook().open_model(model_uuid)
    assert details["model_status"] == success_status and event["file_id"] == details["zip_file_key"]
    assert "url" not in event and emu.url not in str(event)
    assert len(emu.control.requests(f"/open_model/models/{model_uuid}")) == 6  # 5 stages + the check above


@pytest.mark.parametrize("outcome, status_text", [
    ("reconstruction_failed", "8 RECONSTRUCTION_FAILED"),
    ("resource_failed", "13 REQUESTING_RESOURCE_FAILED"),
    ("canceled", "16 RECONSTRUCTION_CANCELED"),
    ("zip_failed", "zip_status 3"),
])
async def test_model_ready_fails_fast_with_error_code(emu, outcome, status_text):
    emu.control.push_scenario("flighthub2", outcome=outcome, error_code=31234)
    [event] = await events(model_trigger(start()))
    assert event["status"] == "failed" and event["error_code"] == 31234
    assert status_text in event["message"] and "31234" in event["message"]


async def test_model_ready_times_out_on_the_wall_clock(emu):
    emu.control.push_scenario("flighthub2", outcome="never")
    began = time.monotonic()
    [event] = await events(model_trigger(start(), seconds=0.4))
    assert event["status"] == "timeout" and time.monotonic() - began < 5


async def test_transient_errors_are_tolerated_then_bounded(emu):
    model_uuid = start()
    # 5 attempts per poll (the hook's retry rule): 6 failures = one failed poll, then the job is seen
    emu.control.add_fault(f"/open_model/models/{model_uuid}$", kind="envelope",
                          body={"code": 210429, "message": "Operations too frequent"}, times=6)
    [event] = await events(model_trigger(model_uuid))
    assert event["status"] == "success"
    emu.control.add_fault("/open_model/models/", kind="status", status=502, times=-1)
    [event] = await events(model_trigger(model_uuid, max_transient_errors=1))
    assert event["status"] == "error" and event["retryable"] is True


async def test_fatal_error_ends_the_trigger(emu, monkeypatch):
    model_uuid = start()
    monkeypatch.setenv("AIRFLOW_CONN_FH_BAD", '{"conn_type": "flighthub2", "host": "%s", "password": "wrong", '
                       '"extra": {"project_uuid": "%s"}}' % (emu.url, FLIGHTHUB2_PROJECT_UUID))
    [event] = await events(model_trigger(model_uuid, conn_id="fh_bad"))
    assert event["status"] == "error" and event["retryable"] is False and event["code"] == 200401


def task_state_is(monkeypatch, state):
    """The task instance's state as the supervisor would report it (no server stands in for the supervisor)."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    def get_task_states(dag_id, map_index=None, task_ids=None, run_ids=None, **_):
        if isinstance(state, Exception):
            raise state
        key = task_ids[0] if map_index is None else f"{task_ids[0]}_{map_index}"
        return {run_ids[0]: {key: state}}

    monkeypatch.setattr(RuntimeTaskInstance, "get_task_states", staticmethod(get_task_states))
    return SimpleNamespace(dag_id="d", run_id="r", task_id="wait_for_model", map_index=0)


@pytest.mark.parametrize(("state", "stops"), [
    ("failed", True), ("success", True),  # marked by a user: a real kill
    (None, False), ("restarting", False), ("scheduled", False),  # cleared to poll again
    (RuntimeError("no supervisor"), False),  # unknown: never stop a paid job on a guess
])
async def test_on_kill_stops_the_reconstruction_only_on_a_real_kill(emu, monkeypatch, state, stops):
    model_uuid = start()
    trigger = model_trigger(model_uuid)
    trigger.task_instance = task_state_is(monkeypatch, state)
    await trigger.on_kill()
    assert len(emu.control.requests(f"/models/{model_uuid}/reconstruction/stop")) == int(stops)
    assert (FlightHub2Hook().open_model(model_uuid)["model_status"] == 16) is stops


async def test_on_kill_never_stops_when_not_asked(emu, monkeypatch):
    model_uuid = start()
    trigger = model_trigger(model_uuid, stop_on_kill=False)
    trigger.task_instance = task_state_is(monkeypatch, "failed")
    await trigger.on_kill()
    assert emu.control.requests("reconstruction/stop") == []


async def test_download_url_waits_while_compressing(emu):
    emu.control.push_scenario("flighthub2", size=1024)
    model_id = FlightHub2Hook().create_model("m", ["model_3d"], task_folder_id=1)
    trigger = FlightHub2DownloadUrlTrigger(file_id=str(model_id), end_time=time.time() + 10, poll_interval=0.05)
    [event] = await events(trigger)
    assert event == {"status": "success", "message": f"download URL for file {model_id} is ready",
                     "file_id": str(model_id), "id": model_id}
    assert len(emu.control.requests("download-url")) == 2  # the first answer had an empty url


async def test_download_url_unknown_file_is_an_error_event(emu):
    trigger = FlightHub2DownloadUrlTrigger(file_id="nope", end_time=time.time() + 10, poll_interval=0.05)
    [event] = await events(trigger)
    assert event["status"] == "error" and event["code"] == 210404


def test_triggers_serialize_round_trip():
    for trigger in (
        FlightHub2ModelReadyTrigger(model_uuid="m-1", end_time=123.0, poll_interval=2, file_id_field="model_uuid",
                                    stop_on_kill=False, conn_id="c", api_version="v2.0"),
        FlightHub2DownloadUrlTrigger(file_id="f-1", end_time=123.0, conn_id="c"),
    ):
        path, kwargs = trigger.serialize()
        module, name = path.rsplit(".", 1)
        clone = getattr(__import__(module, fromlist=[name]), name)(**kwargs)
        assert clone.serialize() == (path, kwargs)
        assert FLIGHTHUB2_TOKEN not in str(kwargs)


# -- sensors ----------------------------------------------------------------------------------------------
def test_model_ready_sensor_poke_and_defer(emu):
    model_uuid = start()
    sensor = FlightHub2ModelReadySensor(task_id="s", model_uuid=model_uuid, poll_interval=0.05, wait_timeout=30)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, FlightHub2ModelReadyTrigger) and trigger.poll_interval == 0.05
    assert trigger.model_uuid == model_uuid and trigger.end_time <= time.time() + 30
    results = [sensor.poke({}) for _ in range(4)]
    assert results[:3] == [False, False, False]
    assert results[3].is_done and results[3].xcom_value["file_id"]


def test_model_ready_sensor_poke_fails_on_terminal_state(emu):
    emu.control.push_scenario("flighthub2", outcome="resource_failed", error_code=4242)
    sensor = FlightHub2ModelReadySensor(task_id="s", model_uuid=start(), mode="reschedule", poke_interval=1)
    assert sensor.poke({}) is False
    with pytest.raises(AirflowFailException, match="4242"):
        sensor.poke({})


def test_sensor_transient_error_means_poke_again(emu):
    emu.control.add_fault("/download-url/", kind="status", status=503, times=-1)
    assert FlightHub2DownloadUrlSensor(task_id="s", file_id="1001").poke({}) is False


def test_download_url_sensor_returns_ids_only(emu):
    sensor = FlightHub2DownloadUrlSensor(task_id="s", file_id="1001")
    assert sensor.poke_interval == 60  # the API advises polling about once a minute
    assert sensor.execute({}) == {"file_id": "1001", "id": 1001}  # ready at once: no deferral


@pytest.mark.parametrize("event, raised", [
    ({"status": "failed", "message": "m"}, AirflowFailException),
    ({"status": "timeout", "message": "m"}, AirflowSensorTimeout),
    ({"status": "error", "message": "m", "retryable": True}, AirflowException),
])
def test_sensor_resumes_from_trigger_events(event, raised):
    sensor = FlightHub2DownloadUrlSensor(task_id="s", file_id="1")
    with pytest.raises(raised):
        sensor.execute_complete({}, event)
    assert sensor.execute_complete({}, {"status": "success", "message": "", "file_id": "1"}) == {"file_id": "1"}


class _FirstTry:
    """What reschedule mode asks of the running task instance (the supervisor's; no server can produce it)."""

    def get_first_reschedule_date(self, context):
        return None


def test_model_ready_sensor_in_reschedule_mode_frees_the_slot_until_ready(emu):
    """Reschedule mode through the real ``execute``: not ready gives the worker slot back; ready returns ids."""
    from airflow.sdk.exceptions import AirflowRescheduleException

    sensor = FlightHub2ModelReadySensor(task_id="s", model_uuid=start(), mode="reschedule", deferrable=False,
                                        poke_interval=5, timeout=60)
    context = {"ti": _FirstTry()}
    reschedules = 0
    while True:
        try:
            result = sensor.execute(context)
            break
        except AirflowRescheduleException as exc:
            reschedules += 1
            assert exc.reschedule_date.timestamp() > time.time()  # back in about poke_interval, slot freed
            assert reschedules < 10
    # queued, running, reconstructed-not-zipped, zipping: four looks that give the slot back, then ready
    assert reschedules == 4 and result["file_id"]
