"""Deferrable waits: GET-only polling through the hook's async methods, judged by ``status``.

Waits of one process share their polls (``core.shared_poll``). Model waits of one connection (and so one
project) share one paged walk of ``open_model/models/running`` per interval, used once the waits outnumber
the calls that walk took: a model in the list is running, and only a model missing from it (finished,
zipping, or too new to be listed) costs a detail call, itself shared by every wait on that model.
"""

from __future__ import annotations

from typing import Any

from artifact_harvest.core.errors import ProviderError, TransientProviderError
from artifact_harvest.core.hook import HookPerTask
from artifact_harvest.core.polling import PollResult, akilled_by_user
from artifact_harvest.core.shared_poll import Key, SharedPollTrigger, shared_polls
from artifact_harvest.flighthub2.hook import FlightHub2Hook
from artifact_harvest.flighthub2.status import PROVIDER, judge_download_url, judge_open_model


#: calls of a walk before the first one is measured: page 1 and the empty page that ends it
MIN_WALK_CALLS = 2


class _FlightHub2Trigger(HookPerTask, SharedPollTrigger):
    hook_class = FlightHub2Hook
    hook_args = ("api_version",)
    poll_fields = ("conn_id", "api_version")

    def __init__(self, *, conn_id: str = FlightHub2Hook.default_conn_name, api_version: str = "v0.1",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.api_version = api_version

    def key(self, *rest: str) -> Key:
        return (PROVIDER, self.conn_id, self.api_version, *rest)


class FlightHub2ModelReadyTrigger(_FlightHub2Trigger):
    """Until an open model is reconstructed and zipped; ``on_kill`` stops the job if ``stop_on_kill``."""

    poll_fields = (*_FlightHub2Trigger.poll_fields, "model_uuid", "file_id_field", "stop_on_kill")

    def __init__(self, *, model_uuid: str, file_id_field: str = "zip_file_key", stop_on_kill: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_uuid = model_uuid
        self.file_id_field = file_id_field
        self.stop_on_kill = stop_on_kill

    def poll_keys(self) -> tuple[Key, ...]:
        return (self.key("running"), self.key("model", self.model_uuid))

    async def poll(self) -> PollResult:
        """From the shared running list while it is cheaper than a detail call per wait; else the details."""
        running, details = self.poll_keys()
        polls = shared_polls()
        walk = polls.last(running)
        if polls.waits(running) > (walk[1] if walk else MIN_WALK_CALLS):
            try:
                models, _ = await self.shared(running, self._walk)
            except TransientProviderError:
                raise
            except ProviderError as exc:  # the list refused (not a blip): the details still answer
                self.log.warning("the running list failed, polling model %s directly: %s", self.model_uuid, exc)
            else:
                listed = models.get(self.model_uuid)
                if listed is not None:
                    return judge_open_model(listed, self.file_id_field)
        return judge_open_model(await self.shared(details, lambda: self.hook.aopen_model(self.model_uuid)),
                                self.file_id_field)

    async def _walk(self) -> tuple[dict[str, dict[str, Any]], int]:
        models, calls = await self.hook.arunning_models()
        return {str(m.get("model_uuid")): m for m in models}, calls

    async def on_kill(self) -> None:
        """A user killed the waiting task: stop the reconstruction (its quota is refunded).

        Airflow calls this on a clear too; a cleared task polls again, so its job is left running.
        """
        if not self.stop_on_kill:
            return
        if not await akilled_by_user(self.task_instance):
            self.log.info("the task was cleared, not killed: model %s keeps reconstructing", self.model_uuid)
            return
        self.log.info("stopping reconstruction of model %s", self.model_uuid)
        await self.hook.astop_reconstruction(self.model_uuid)

    def describe(self) -> str:
        return f"model {self.model_uuid}"


class FlightHub2DownloadUrlTrigger(_FlightHub2Trigger):
    """Until ``model/download-url/{file_id}`` answers a non-empty URL (the URL itself is not passed on)."""

    poll_fields = (*_FlightHub2Trigger.poll_fields, "file_id")

    def __init__(self, *, file_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file_id = str(file_id)

    def poll_keys(self) -> tuple[Key, ...]:
        return (self.key("download-url", self.file_id),)

    async def poll(self) -> PollResult:
        [key] = self.poll_keys()
        return judge_download_url(await self.shared(key, lambda: self.hook.adownload_url(self.file_id)), self.file_id)

    def describe(self) -> str:
        return f"download URL of file {self.file_id}"
