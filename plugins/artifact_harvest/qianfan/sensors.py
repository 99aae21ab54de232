"""Wait for a Qianfan model export to be ``Done``; deferrable by default, poke and reschedule work too."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from airflow.sdk import Context

from artifact_harvest.core.hook import HookPerTask
from artifact_harvest.core.idempotency import remember, remembered
from artifact_harvest.core.polling import PollResult
from artifact_harvest.core.sensors import PollingSensor
from artifact_harvest.qianfan.hook import QianfanHook
from artifact_harvest.qianfan.status import VanishWatch, judge
from artifact_harvest.qianfan.triggers import DEFAULT_MISSING_GRACE, QianfanModelExportTrigger

_WATCH_KEY = "qianfan_vanish_watch"


class QianfanModelExportSensor(HookPerTask, PollingSensor):
    """Succeeds with ``{modelId, exportId, fileName, fileSize, md5}`` (no URL: download asks for a fresh one).

    :param model_id: model version id (``amv-...``), templated.
    :param export_id: the export to wait for (from the create step), templated; when set, an export that
        stops being listed counts as failed after ``missing_grace_seconds``.
    :param listed_before: the export listed before the create step's create (its ``listedBefore``; "" for
        none, None when unknown), templated: any other export in place of ours is newer and is followed.
    """

    hook_class = QianfanHook
    trigger_class = QianfanModelExportTrigger
    template_fields = (*PollingSensor.template_fields, "model_id", "export_id", "listed_before")

    def __init__(
        self,
        *,
        model_id: str,
        export_id: str | None = None,
        conn_id: str = QianfanHook.default_conn_name,
        missing_grace_seconds: float = DEFAULT_MISSING_GRACE,
        listed_before: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.export_id = export_id
        self.conn_id = conn_id
        self.missing_grace_seconds = missing_grace_seconds
        self.listed_before = listed_before

    def check(self, context: Context) -> PollResult:
        """One Describe; the vanish watch lives in the task state store so reschedule mode keeps it too."""
        export_id = self.export_id or None
        record = self.hook.describe_export(self.model_id)
        stored = remembered(context, _WATCH_KEY) or dataclasses.asdict(VanishWatch(expect_record=export_id is not None))
        watch = VanishWatch(**stored)
        missing_for = watch.missing_for(record, export_id, time.time(), self.listed_before)
        if (current := dataclasses.asdict(watch)) != stored:
            remember(context, _WATCH_KEY, current)
        return judge(record, model_id=self.model_id, export_id=export_id, missing_for=missing_for,
                     missing_grace_seconds=self.missing_grace_seconds, listed_before=self.listed_before)
