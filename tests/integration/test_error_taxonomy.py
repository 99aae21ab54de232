"""One error taxonomy in every sensor mode: the same provider answer, run through poke, reschedule and deferrable
(the trigger in the triggerer's place, then ``execute_complete``), ends the same way.

- an unknown error code, a non-JSON answer (a proxy's page), or transient failures beyond
  ``max_transient_errors`` in a row: Airflow's task retries (AirflowException, never AirflowFailException);
- a documented fatal code: the task fails at once (AirflowFailException);
- an undocumented state: polling goes on, with a warning, until the job's real end.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowRescheduleException,
    TaskDeferred,
)

from artifact_harvest.core.sensors import PollingSensor
from artifact_harvest.flighthub2.hook import FlightHub2Hook
from artifact_harvest.flighthub2.sensors import FlightHub2ModelReadySensor
from artifact_harvest.minimax.hook import MiniMaxHook
from artifact_harvest.minimax.sensors import MiniMaxTaskSensor
from artifact_harvest.qianfan.hook import QianfanHook
from artifact_harvest.qianfan.sensors import QianfanModelExportSensor
from tests.support import StateStore

MODES = ("poke", "reschedule", "deferrable")
TIMING = {"poke_interval": 0.01, "timeout": 30, "max_transient_errors": 1}
OUTAGE = {"kind": "status", "status": 502, "times": -1}  # a gateway that keeps failing: transient, unbounded


class _TaskInstance:
    """The one thing reschedule mode asks the task instance (no server can stand in for it)."""

    def get_first_reschedule_date(self, context: Any) -> None:
        return None


@dataclass(frozen=True)
class Provider:
    sensor: Callable[[Any], PollingSensor]  # emu -> a sensor on a freshly submitted job
    status_route: dict[str, str]  # the fault's route (and method/query) of the status call
    answers: dict[str, dict[str, Any]]  # answer name -> fault kind and options


def _flighthub2(emu) -> PollingSensor:
    from tests.dags.test_flighthub2_dags import upload

    hook = FlightHub2Hook()
    model_uuid = hook.start_reconstruction(upload(hook), {"3d": {}})["3d"]
    return FlightHub2ModelReadySensor(task_id="wait", model_uuid=model_uuid, stop_on_kill=False, **TIMING)


def _minimax(emu) -> PollingSensor:
    task_id = MiniMaxHook().create_video("a kite", "T2V-01")
    return MiniMaxTaskSensor(task_id="wait", minimax_task_id=task_id, kind="video", **TIMING)


def _qianfan(emu) -> PollingSensor:
    model_id = f"amv-tax{time.monotonic_ns()}"
    export_id = QianfanHook().create_export(model_id)
    return QianfanModelExportSensor(task_id="wait", model_id=model_id, export_id=export_id, **TIMING)


EXPORT_ID = "{export_id}"  # filled in with the awaited export's id
PROXY_PAGE = {"kind": "status", "status": 200}  # text/plain "injected fault ...": not JSON, like an HTML page
PROVIDERS = {
    "flighthub2": Provider(_flighthub2, {"route": r"/open_model/models/[0-9a-f-]{36}$", "method": "GET"}, {
        "unknown_code": {"kind": "envelope", "body": {"code": 299999, "message": "brand new error"}},
        "proxy_page": PROXY_PAGE,
        "outage": OUTAGE,
        "fatal_code": {"kind": "envelope", "body": {"code": 200401, "message": "bad key"}},
        "unknown_state": {"kind": "envelope", "body": {"code": 0, "message": "", "data": {
            "model_uuid": "m", "model_status": 77, "zip_status": 0}}},
    }),
    "minimax": Provider(_minimax, {"route": "/v1/query/video_generation$"}, {
        "unknown_code": {"kind": "envelope", "body": {"base_resp": {"status_code": 9999,
                                                                    "status_msg": "brand new error"}}},
        "proxy_page": PROXY_PAGE,
        "outage": OUTAGE,
        "fatal_code": {"kind": "envelope", "body": {"base_resp": {"status_code": 1004, "status_msg": "bad key"}}},
        "unknown_state": {"kind": "envelope", "body": {"base_resp": {"status_code": 0, "status_msg": "success"},
                                                       "task_id": "t", "status": "Rendering"}},
    }),
    "qianfan": Provider(_qianfan, {"route": "^/v2/model$", "query": "Action=DescribeModelExportTask"}, {
        "unknown_code": {"kind": "status", "status": 409, "body": {"requestId": "r-1", "code": "BrandNewError",
                                                                   "message": "brand new error"}},
        "proxy_page": PROXY_PAGE,
        "outage": OUTAGE,
        "fatal_code": {"kind": "status", "status": 403, "body": {"requestId": "r-2", "code": "AccessDenied",
                                                                 "message": "bad key"}},
        "unknown_state": {"kind": "envelope", "body": {"requestId": "r-3", "result": {
            "hasRecord": True, "exportId": EXPORT_ID, "status": "Exporting"}}},
    }),
}
EXPECTED = {"unknown_code": "retry", "proxy_page": "retry", "outage": "retry", "fatal_code": "fail",
            "unknown_state": "success"}


async def _first_event(trigger) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


def _outcome(emu, sensor: PollingSensor, mode: str, fault: dict[str, Any]) -> tuple[str, str]:
    """How the task ends: ``success``, ``retry`` (Airflow's retries apply) or ``fail`` (no retry), and why."""
    context = {"task_state_store": StateStore(), "ti": _TaskInstance()}
    try:
        if mode == "deferrable":
            try:
                sensor.execute(context)  # the first look, on the worker: the job is still running
                raise AssertionError("the sensor did not defer")
            except TaskDeferred as deferred:
                emu.control.add_fault(**fault)  # the answer reaches the trigger's first poll
                return "success", str(sensor.execute_complete(context, asyncio.run(_first_event(deferred.trigger))))
        emu.control.add_fault(**fault)
        sensor.deferrable, sensor.mode = False, mode
        while True:
            try:
                return "success", str(sensor.execute(context))
            except AirflowRescheduleException:
                continue  # what the scheduler does: run the task again
    except AirflowFailException as exc:
        return "fail", str(exc)
    except AirflowException as exc:
        return "retry", str(exc)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("answer", list(EXPECTED))
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_the_same_answer_ends_the_same_way_in_every_mode(emu, caplog, provider, answer, mode):
    spec = PROVIDERS[provider]
    sensor = spec.sensor(emu)
    fault = json.loads(json.dumps({**spec.status_route, "times": 1, **spec.answers[answer]})
                       .replace(EXPORT_ID, str(getattr(sensor, "export_id", ""))))
    outcome, message = _outcome(emu, sensor, mode, fault)
    assert outcome == EXPECTED[answer], message
    assert emu.control.faults()["applied"], "the answer never reached the sensor"
    if answer == "unknown_code":
        assert "brand new error" in message
    if answer == "proxy_page":
        assert "not JSON" in message
    if answer == "outage":
        assert "transient errors in a row" in message and "502" in message
    if answer == "unknown_state":
        assert "undocumented" in caplog.text
