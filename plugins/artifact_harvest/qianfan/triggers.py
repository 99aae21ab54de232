"""Deferred wait for a Qianfan model export: DescribeModelExportTask polling in the triggerer.

Qianfan documents no call that cancels an export, so ``on_kill`` has nothing to cancel remotely. Waits of one
process on the same model version share one Describe per interval (``core.shared_poll``); each keeps its own
vanish watch.
"""

from __future__ import annotations

import time
from typing import Any

from artifact_harvest.core.hook import HookPerTask
from artifact_harvest.core.polling import PollResult
from artifact_harvest.core.shared_poll import Key, SharedPollTrigger
from artifact_harvest.qianfan.hook import QianfanHook
from artifact_harvest.qianfan.status import PROVIDER, VanishWatch, judge

DEFAULT_MISSING_GRACE = 120.0


class QianfanModelExportTrigger(HookPerTask, SharedPollTrigger):
    """Polls a model version's export until ``Done`` (event: ids, file name, size, md5; never the URL).

    ``export_id`` (from the create step) says the export must exist, so a triggerer restart cannot forget
    that it was ``Doing``; without it, the trigger learns that from the first ``Doing`` it sees.
    """

    hook_class = QianfanHook
    poll_fields = ("model_id", "export_id", "conn_id", "missing_grace_seconds", "listed_before")

    def __init__(
        self,
        *,
        model_id: str,
        export_id: str | None = None,
        conn_id: str = QianfanHook.default_conn_name,
        missing_grace_seconds: float = DEFAULT_MISSING_GRACE,
        listed_before: str | None = None,
        **polling: Any,
    ) -> None:
        super().__init__(**polling)
        self.model_id = model_id
        self.export_id = export_id or None
        self.conn_id = conn_id
        self.missing_grace_seconds = float(missing_grace_seconds)
        self.listed_before = listed_before
        self._watch = VanishWatch(expect_record=self.export_id is not None)

    def poll_keys(self) -> tuple[Key, ...]:
        return ((PROVIDER, self.conn_id, self.model_id),)

    async def poll(self) -> PollResult:
        [key] = self.poll_keys()
        record = await self.shared(key, lambda: self.hook.adescribe_export(self.model_id))
        return judge(
            record,
            model_id=self.model_id,
            export_id=self.export_id,
            missing_for=self._watch.missing_for(record, self.export_id, time.time(), self.listed_before),
            missing_grace_seconds=self.missing_grace_seconds,
            listed_before=self.listed_before,
        )

    def describe(self) -> str:
        return f"Qianfan export {self.export_id or '(any)'} of {self.model_id}"
