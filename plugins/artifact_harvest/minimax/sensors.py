"""Sensors for MiniMax (deferrable by default; poke and reschedule use the same status function)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Context

from artifact_harvest.core.polling import PollingTrigger, PollResult
from artifact_harvest.core.sensors import PollingSensor
from artifact_harvest.minimax.hook import MiniMaxHook
from artifact_harvest.minimax.status import TaskKind, judge_file, judge_task
from artifact_harvest.minimax.triggers import MiniMaxFileReadyTrigger, MiniMaxTaskTrigger


class _MiniMaxSensor(PollingSensor):
    """``poll_interval`` and ``wait_timeout`` may be templates (DAG params); they replace ``poke_interval`` and
    ``timeout`` when the task runs, because the base sensor validates those two as numbers at parse time."""

    template_fields: tuple[str, ...] = ("poll_interval", "wait_timeout")

    def __init__(self, *, conn_id: str = "minimax_default", poll_interval: float | str | None = None,
                 wait_timeout: float | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout

    def execute(self, context: Context) -> Any:
        if self.poll_interval not in (None, ""):
            self.poke_interval = float(self.poll_interval)
        if self.wait_timeout not in (None, ""):
            self.timeout = float(self.wait_timeout)
        return super().execute(context)


class MiniMaxTaskSensor(_MiniMaxSensor):
    """Wait for a video (``kind="video"``) or async-speech (``kind="speech"``) task; returns
    ``{"task_id", "file_id"}`` (file_id as int). ``minimax_task_id`` because ``task_id`` names the Airflow task."""

    template_fields = (*_MiniMaxSensor.template_fields, "minimax_task_id")

    def __init__(self, *, minimax_task_id: str, kind: str = TaskKind.VIDEO.value, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.minimax_task_id = minimax_task_id
        self.kind = TaskKind(kind).value

    def check(self, context: Context) -> PollResult:
        return judge_task(self.kind, MiniMaxHook(self.conn_id).query_task(self.kind, str(self.minimax_task_id)))

    def build_trigger(self, end_time: float) -> PollingTrigger:
        return MiniMaxTaskTrigger(minimax_task_id=str(self.minimax_task_id), kind=self.kind, conn_id=self.conn_id,
                                  end_time=end_time, poll_interval=self.poke_interval,
                                  max_transient_errors=self.max_transient_errors)


class MiniMaxFileReadySensor(_MiniMaxSensor):
    """Wait until files/retrieve gives a download URL; returns ``{"file_id", "bytes", "filename"}`` (no URL)."""

    template_fields = (*_MiniMaxSensor.template_fields, "file_id")

    def __init__(self, *, file_id: int | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file_id = file_id

    def check(self, context: Context) -> PollResult:
        return judge_file(MiniMaxHook(self.conn_id).retrieve_file(self.file_id))

    def build_trigger(self, end_time: float) -> PollingTrigger:
        return MiniMaxFileReadyTrigger(file_id=str(self.file_id), conn_id=self.conn_id, end_time=end_time,
                                       poll_interval=self.poke_interval,
                                       max_transient_errors=self.max_transient_errors)
