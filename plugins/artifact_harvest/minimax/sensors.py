"""Sensors for MiniMax (deferrable by default; poke and reschedule use the same status function)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Context

from artifact_harvest.core.hook import HookPerTask
from artifact_harvest.core.polling import PollResult
from artifact_harvest.core.sensors import PollingSensor
from artifact_harvest.minimax.hook import MiniMaxHook
from artifact_harvest.minimax.status import TaskKind, judge_file, judge_task
from artifact_harvest.minimax.triggers import MiniMaxFileReadyTrigger, MiniMaxTaskTrigger


class _MiniMaxSensor(HookPerTask, PollingSensor):
    hook_class = MiniMaxHook

    def __init__(self, *, conn_id: str = MiniMaxHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id


class MiniMaxTaskSensor(_MiniMaxSensor):
    """Wait for a video (``kind="video"``) or async-speech (``kind="speech"``) task; returns
    ``{"task_id", "file_id"}`` (file_id as int). ``minimax_task_id`` because ``task_id`` names the Airflow task."""

    trigger_class = MiniMaxTaskTrigger
    template_fields = (*PollingSensor.template_fields, "minimax_task_id")

    def __init__(self, *, minimax_task_id: str, kind: str = TaskKind.VIDEO.value, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.minimax_task_id = minimax_task_id
        self.kind = TaskKind(kind).value

    def check(self, context: Context) -> PollResult:
        return judge_task(self.kind, self.hook.query_task(self.kind, str(self.minimax_task_id)))


class MiniMaxFileReadySensor(_MiniMaxSensor):
    """Wait until files/retrieve gives a download URL; returns ``{"file_id", "bytes", "filename"}`` (no URL)."""

    trigger_class = MiniMaxFileReadyTrigger
    template_fields = (*PollingSensor.template_fields, "file_id")

    def __init__(self, *, file_id: int | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file_id = file_id

    def check(self, context: Context) -> PollResult:
        return judge_file(self.hook.retrieve_file(self.file_id))
