"""Every trigger in the package honours the triggerer's contract.

The triggerer sets ``task_id``, ``trigger_id``, ``task_instance`` and ``template_fields`` on each trigger
before running it: a trigger that keeps its own data under one of those names polls the wrong thing in
production while passing every test that runs ``trigger.run()`` directly (this bit MiniMax once).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import artifact_harvest
from artifact_harvest.core.polling import PollingTrigger

RESERVED = {"task_id", "trigger_id", "task_instance", "template_fields", "template_ext"}


def _trigger_classes() -> list[type[PollingTrigger]]:
    for info in pkgutil.walk_packages(artifact_harvest.__path__, "artifact_harvest."):
        if info.name.endswith(".triggers"):
            importlib.import_module(info.name)

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    return sorted({c for c in subclasses(PollingTrigger) if c.__module__.startswith("artifact_harvest.")},
                  key=lambda c: c.__qualname__)


def test_every_provider_has_triggers():
    modules = {c.__module__ for c in _trigger_classes()}
    assert {f"artifact_harvest.{p}.triggers" for p in ("flighthub2", "minimax", "qianfan")} <= modules


@pytest.mark.parametrize("cls", _trigger_classes(), ids=lambda c: c.__qualname__)
def test_trigger_kwargs_avoid_names_the_triggerer_overwrites(cls):
    params = set(inspect.signature(cls.__init__).parameters)
    assert not params & RESERVED, f"{cls.__qualname__} takes {params & RESERVED}, which the triggerer overwrites"


#: the arguments each sensor needs beyond its task id
SENSOR_KWARGS = {
    "MiniMaxTaskSensor": {"minimax_task_id": 42, "kind": "speech", "conn_id": "mm"},
    "MiniMaxFileReadySensor": {"file_id": 7},
    "FlightHub2ModelReadySensor": {"model_uuid": "m-1", "stop_on_kill": False, "api_version": "v2.0"},
    "FlightHub2DownloadUrlSensor": {"file_id": 5, "conn_id": "fh"},
    "QianfanModelExportSensor": {"model_id": "amv-1", "export_id": "amve-1", "listed_before": ""},
}


def _sensor_classes() -> list[type]:
    from artifact_harvest.core.sensors import PollingSensor

    for info in pkgutil.walk_packages(artifact_harvest.__path__, "artifact_harvest."):
        if info.name.endswith(".sensors"):
            importlib.import_module(info.name)

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    return sorted({c for c in subclasses(PollingSensor) if "trigger_class" in vars(c)}, key=lambda c: c.__qualname__)


def test_every_sensor_is_covered():
    assert {c.__name__ for c in _sensor_classes()} == set(SENSOR_KWARGS)


@pytest.mark.parametrize("cls", _sensor_classes(), ids=lambda c: c.__qualname__)
def test_a_sensor_defers_to_its_trigger_with_its_own_values(cls):
    sensor = cls(task_id="wait", poke_interval=3, **SENSOR_KWARGS[cls.__name__])
    path, kwargs = sensor.build_trigger(123.0).serialize()
    assert path == f"{cls.trigger_class.__module__}.{cls.trigger_class.__qualname__}"
    assert (kwargs["end_time"], kwargs["poll_interval"]) == (123.0, 3.0)
    assert kwargs["conn_id"] == sensor.conn_id == SENSOR_KWARGS[cls.__name__].get("conn_id",
                                                                                  sensor.hook_class.default_conn_name)
    for name in cls.trigger_class.poll_fields:  # as given, or as the trigger normalises it (ids as text)
        assert kwargs[name] in (getattr(sensor, name), str(getattr(sensor, name)), getattr(sensor, name) or None)
    assert cls.trigger_class(**kwargs).serialize() == (path, kwargs)
