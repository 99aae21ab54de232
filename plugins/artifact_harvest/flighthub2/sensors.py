"""Sensors for FlightHub 2: deferrable by default; poke and reschedule use the same status functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context

from artifact_harvest.core.hook import HookPerTask
from artifact_harvest.core.polling import PollResult, killed_by_user
from artifact_harvest.core.sensors import PollingSensor
from artifact_harvest.flighthub2.hook import FlightHub2Hook
from artifact_harvest.flighthub2.status import judge_download_url, judge_open_model
from artifact_harvest.flighthub2.triggers import FlightHub2DownloadUrlTrigger, FlightHub2ModelReadyTrigger


class _FlightHub2Sensor(HookPerTask, PollingSensor):
    hook_class = FlightHub2Hook
    hook_args = ("api_version",)

    def __init__(self, *, conn_id: str = FlightHub2Hook.default_conn_name, api_version: str = "v0.1",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.api_version = api_version


class FlightHub2ModelReadySensor(_FlightHub2Sensor):
    """Wait until an open model is reconstructed (``model_status`` 9/15) and zipped (``zip_status`` 2).

    Fails at once on 8, 13, 16 or ``zip_status`` 3, quoting the model's ``error_code``. Returns
    ``{model_uuid, resource_uuid, model_type, model_size, file_id}``.

    :param model_uuid: the open model (templated).
    :param file_id_field: which details field is the ``file_id`` of ``model/download-url``. The docs do not
        say how an open model's archive maps to that id; ``zip_file_key`` is the default assumption.
    :param stop_on_kill: stop the reconstruction when a user kills the task (marks it failed or success);
        clearing it to poll again leaves the job running.
    """

    trigger_class = FlightHub2ModelReadyTrigger
    template_fields: Sequence[str] = (*PollingSensor.template_fields, "model_uuid")

    def __init__(self, *, model_uuid: str, file_id_field: str = "zip_file_key", stop_on_kill: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_uuid = model_uuid
        self.file_id_field = file_id_field
        self.stop_on_kill = stop_on_kill

    def check(self, context: Context) -> PollResult:
        return judge_open_model(self.hook.open_model(self.model_uuid), self.file_id_field)

    def on_kill(self) -> None:
        """Killed while poking on a worker: same policy as the trigger's ``on_kill`` (a clear keeps the job)."""
        if self.stop_on_kill and self.model_uuid and killed_by_user(self.running_ti):
            self.hook.stop_reconstruction(self.model_uuid)


class FlightHub2DownloadUrlSensor(_FlightHub2Sensor):
    """Wait until ``model/download-url/{file_id}`` is non-empty (empty = still compressing).

    Returns ``{file_id, id}``, never the URL: the download operator fetches a fresh one right before use.
    The API advises polling about once a minute, hence the default ``poke_interval`` of 60 s.

    :param file_id: the model file id (templated): a model-management model ``id`` or, for open models,
        the ``zip_file_key`` (an assumption: see ``FlightHub2ModelReadySensor``).
    """

    trigger_class = FlightHub2DownloadUrlTrigger
    template_fields: Sequence[str] = (*PollingSensor.template_fields, "file_id")

    def __init__(self, *, file_id: str, poke_interval: float = 60, **kwargs: Any) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.file_id = file_id

    def check(self, context: Context) -> PollResult:
        return judge_download_url(self.hook.download_url(str(self.file_id)), str(self.file_id))
