"""MiniMax triggers and sensors against the emulator: every outcome, one event, serialize round-trip."""

from __future__ import annotations

import importlib
import time

import pytest
from airflow.sdk.exceptions import AirflowFailException

from artifact_harvest.minimax.hook import MiniMaxHook
from artifact_harvest.minimax.sensors import MiniMaxFileReadySensor, MiniMaxTaskSensor
from artifact_harvest.minimax.triggers import MiniMaxFileReadyTrigger, MiniMaxTaskTrigger
from harvest_emulator.minimax import DEFAULT_VIDEO_SIZE, SEED_VIDEO_FILE_ID


async def events(trigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


def task_trigger(task_id: str, kind: str = "video", deadline: float = 10) -> MiniMaxTaskTrigger:
    return MiniMaxTaskTrigger(minimax_task_id=task_id, kind=kind, end_time=time.time() + deadline, poll_interval=0.05,
                              max_transient_errors=2)


def create(emu, kind: str = "video", **scenario) -> str:
    if scenario:
        emu.control.push_scenario("minimax", **scenario)
    hook = MiniMaxHook()
    return hook.create_video("p", "T2V-01") if kind == "video" else hook.create_speech("t", "speech-2.8-hd", "v")


@pytest.mark.parametrize("kind", ["video", "speech"])
async def test_success_event_carries_file_id(emu, kind):
    task_id = create(emu, kind)
    [event] = await events(task_trigger(task_id, kind))
    assert event["status"] == "success" and event["task_id"] == task_id
    assert isinstance(event["file_id"], int)
    assert "download_url" not in event


@pytest.mark.parametrize(("kind", "spelling", "outcome", "expected"), [
    ("video", None, "fail", "Fail"),
    ("video", "Failed", "fail", "Failed"),
    ("speech", None, "fail", "failed"),
    ("speech", "Capitalized", "fail", "Failed"),
    ("speech", None, "expired", "expired"),
])
async def test_failure_spellings_fail_fast(emu, kind, spelling, outcome, expected):
    task_id = create(emu, kind, outcome=outcome, **({"status_spelling": spelling} if spelling else {}))
    [event] = await events(task_trigger(task_id, kind))
    assert event["status"] == "failed"
    assert repr(expected) in event["message"]


async def test_unknown_status_keeps_polling_until_success(emu):
    task_id = create(emu, outcome="unknown_status")
    [event] = await events(task_trigger(task_id))
    assert event["status"] == "success"
    statuses = [j for j in emu.control.jobs("minimax") if j["job_id"] == task_id][0]
    assert statuses["observations"] >= 5  # passed the undocumented "Rendering" stage


async def test_never_finishing_task_times_out_at_the_deadline(emu):
    task_id = create(emu, outcome="never")
    started = time.monotonic()
    [event] = await events(task_trigger(task_id, deadline=0.5))
    assert event["status"] == "timeout" and task_id in event["message"]
    assert time.monotonic() - started < 5


async def test_transient_codes_are_tolerated_then_bounded(emu):
    task_id = create(emu)
    emu.control.add_fault(route="/v1/query/video_generation", kind="envelope",
                          body={"base_resp": {"status_code": 1033, "status_msg": "system error"}}, times=-1)
    [event] = await events(MiniMaxTaskTrigger(minimax_task_id=task_id, end_time=time.time() + 30, poll_interval=0.01,
                                              max_transient_errors=1))
    assert event["status"] == "error" and event["retryable"] is True and event["code"] == 1033


async def test_terminal_code_while_polling_is_not_retryable(emu):
    task_id = create(emu)
    emu.control.add_fault(route="/v1/query/video_generation", kind="envelope",
                          body={"base_resp": {"status_code": 1004, "status_msg": "token not match group"}})
    [event] = await events(task_trigger(task_id))
    assert event["status"] == "error" and event["retryable"] is False and event["code"] == 1004


async def test_file_ready_trigger_waits_for_the_url(emu):
    task_id = create(emu)
    [done] = await events(task_trigger(task_id))
    trigger = MiniMaxFileReadyTrigger(file_id=done["file_id"], end_time=time.time() + 10, poll_interval=0.05)
    [event] = await events(trigger)
    assert event["status"] == "success"
    assert event["file_id"] == done["file_id"] and event["bytes"] > 0 and event["filename"] == "output_aigc.mp4"
    assert "http" not in str(event)
    assert len(emu.control.requests("/v1/files/retrieve")) == 2  # pending once, then ready


@pytest.mark.parametrize("trigger", [
    MiniMaxTaskTrigger(minimax_task_id="12", kind="speech", conn_id="c", end_time=5.0, poll_interval=2.0),
    MiniMaxFileReadyTrigger(file_id=34, conn_id="c", end_time=5.0, poll_interval=2.0, max_transient_errors=3),
])
def test_serialize_round_trip(trigger):
    path, kwargs = trigger.serialize()
    module, name = path.rsplit(".", 1)
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (path, kwargs)


@pytest.mark.parametrize(("kind", "scenario", "expected"), [
    ("video", {}, "success"), ("speech", {}, "success"),
    ("video", {"outcome": "fail", "status_spelling": "Failed"}, "failed"),
    ("speech", {"outcome": "expired"}, "failed"),
])
def test_sensor_poke_path_uses_the_same_table(emu, kind, scenario, expected):
    task_id = create(emu, kind, **scenario)
    sensor = MiniMaxTaskSensor(task_id="wait", minimax_task_id=task_id, kind=kind, deferrable=False)
    outcome = None
    for _ in range(10):
        try:
            done = sensor.poke({})
        except AirflowFailException as exc:
            outcome = "failed"
            assert task_id in str(exc)
            break
        if done:
            outcome = "success"
            assert done.xcom_value["task_id"] == task_id and isinstance(done.xcom_value["file_id"], int)
            break
    assert outcome == expected


def test_sensor_defers_with_a_task_trigger_and_judges_its_event(emu):
    from airflow.sdk.exceptions import TaskDeferred

    task_id = create(emu)
    sensor = MiniMaxTaskSensor(task_id="wait", minimax_task_id=task_id, poke_interval=0.05, timeout=30)
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({})
    trigger = info.value.trigger
    assert isinstance(trigger, MiniMaxTaskTrigger) and trigger.minimax_task_id == task_id and trigger.poll_interval == 0.05
    assert sensor.execute_complete({}, {"status": "success", "message": "", "task_id": task_id, "file_id": 5}) == {
        "task_id": task_id, "file_id": 5}
    with pytest.raises(AirflowFailException):
        sensor.execute_complete({}, {"status": "failed", "message": "Fail"})


def test_file_sensor_returns_summary_without_url(emu):
    sensor = MiniMaxFileReadySensor(task_id="ready", file_id=str(SEED_VIDEO_FILE_ID), deferrable=False)
    done = sensor.poke({})
    assert done.xcom_value == {
        "file_id": SEED_VIDEO_FILE_ID, "bytes": DEFAULT_VIDEO_SIZE, "filename": "output_aigc.mp4"}
