"""Deferred waits on MiniMax: GET-only polling in the triggerer, judged by ``status``.

MiniMax documents no way to cancel a V1 video or async-speech task, so ``on_kill`` has nothing to cancel;
the base class's default (do nothing remote) is the honest behaviour. Waits of one process on the same task or
file share one query per interval (``core.shared_poll``).
"""

from __future__ import annotations

from typing import Any

from artifact_harvest.core.hook import HookPerTask
from artifact_harvest.core.polling import PollResult
from artifact_harvest.core.shared_poll import Key, SharedPollTrigger
from artifact_harvest.minimax.hook import MiniMaxHook
from artifact_harvest.minimax.status import PROVIDER, TaskKind, judge_file, judge_task


class MiniMaxTaskTrigger(HookPerTask, SharedPollTrigger):
    """Polls a video or speech task until success (event carries ``task_id`` and ``file_id``) or failure."""

    hook_class = MiniMaxHook
    poll_fields = ("minimax_task_id", "kind", "conn_id")

    def __init__(self, *, minimax_task_id: str, kind: str = TaskKind.VIDEO.value,
                 conn_id: str = MiniMaxHook.default_conn_name, **polling: Any) -> None:
        super().__init__(**polling)
        # not ``task_id``: the triggerer sets that attribute to the Airflow task's id
        self.minimax_task_id = str(minimax_task_id)
        self.kind = TaskKind(kind).value
        self.conn_id = conn_id

    def poll_keys(self) -> tuple[Key, ...]:
        return ((PROVIDER, self.conn_id, self.kind, self.minimax_task_id),)

    async def poll(self) -> PollResult:
        [key] = self.poll_keys()
        return judge_task(self.kind, await self.shared(key, lambda: self.hook.aquery_task(self.kind,
                                                                                          self.minimax_task_id)))

    def describe(self) -> str:
        return f"MiniMax {self.kind} task {self.minimax_task_id}"


class MiniMaxFileReadyTrigger(HookPerTask, SharedPollTrigger):
    """Polls files/retrieve until the file has a download URL (the event never carries the URL)."""

    hook_class = MiniMaxHook
    poll_fields = ("file_id", "conn_id")

    def __init__(self, *, file_id: int | str, conn_id: str = MiniMaxHook.default_conn_name, **polling: Any) -> None:
        super().__init__(**polling)
        self.file_id = str(file_id)
        self.conn_id = conn_id

    def poll_keys(self) -> tuple[Key, ...]:
        return ((PROVIDER, self.conn_id, "file", self.file_id),)

    async def poll(self) -> PollResult:
        [key] = self.poll_keys()
        return judge_file(await self.shared(key, lambda: self.hook.aretrieve_file(self.file_id)))

    def describe(self) -> str:
        return f"MiniMax file {self.file_id}"
