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
