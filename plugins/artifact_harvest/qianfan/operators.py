"""Start (or reuse) a Qianfan model export on the worker, and download-and-archive a finished one."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context

from artifact_harvest.core.download import RemoteFile
from artifact_harvest.core.errors import FatalProviderError
from artifact_harvest.core.hook import HookPerTask
from artifact_harvest.core.idempotency import remember, remembered, submit_once
from artifact_harvest.core.operators import DownloadAndArchiveOperator
from artifact_harvest.core.params import as_bool
from artifact_harvest.qianfan.hook import QianfanHook
from artifact_harvest.qianfan.status import PROVIDER, RUNNING_STATES, ExportRecord, ExportState, is_missing
from artifact_harvest.qianfan.validation import check_model_version_id

EXPORT_ID_KEY = "qianfan_export_id"
#: the finished export a forced create replaces: reconciliation must not mistake it for the new one
REPLACED_KEY = "qianfan_replaced_export_id"


class QianfanCreateModelExportOperator(HookPerTask, BaseOperator):
    """Make sure the model version has an export and return ``{"modelId", "exportId"}``.

    Idempotent: a ``Done`` export is reused (unless ``force_new_export``), a ``Doing`` one is attached to
    (even when forced: the version is being packaged already), and the export id is stored in the task
    state store the moment it is known, so a retried task never creates a second export.

    :param model_id: model version id (``amv-...``), templated.
    :param force_new_export: create a new export even when a finished one exists, templated.
    :param resubmit_failed: when the export an earlier try stored failed, create a new one instead of failing
        (templated).

    A create whose answer was lost (or whose worker died before the id was stored) is found again with
    DescribeModelExportTask and attached to when the version's export is ``Doing``, or ``Done`` and not the
    one a forced create replaced; never sent twice blindly.
    """

    hook_class = QianfanHook
    template_fields = ("model_id", "force_new_export", "resubmit_failed")

    def __init__(
        self,
        *,
        model_id: str,
        force_new_export: bool | str = False,
        resubmit_failed: bool | str = False,
        conn_id: str = QianfanHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.force_new_export = force_new_export
        self.resubmit_failed = resubmit_failed
        self.conn_id = conn_id

    def execute(self, context: Context) -> dict[str, str]:
        self.model_id = check_model_version_id(self.model_id)  # Qianfan's rule before any call
        force = as_bool(self.force_new_export, "force_new_export", PROVIDER)

        def submit() -> str:
            current = self.hook.describe_export(self.model_id)
            if current.has_record and current.state in RUNNING_STATES:
                self.log.info("attaching to export %s of %s, which is running", current.export_id, self.model_id)
                return current.export_id
            if current.has_record and current.state is ExportState.DONE and not force:
                self.log.info("reusing finished export %s of %s", current.export_id, self.model_id)
                return current.export_id
            remember(context, REPLACED_KEY, current.export_id or "")  # the store refuses None
            export_id = self.hook.create_export(self.model_id)
            self.log.info("created export %s of %s", export_id, self.model_id)
            return export_id

        def find() -> str | None:
            return self._created(self.hook.describe_export(self.model_id), remembered(context, REPLACED_KEY) or None)

        export_id = submit_once(
            context, EXPORT_ID_KEY, submit, find=find, failed=self._failed,
            resubmit_failed=as_bool(self.resubmit_failed, "resubmit_failed", PROVIDER),
        )
        return {"modelId": self.model_id, "exportId": export_id}

    @staticmethod
    def _created(record: ExportRecord, replaced: str | None) -> str | None:
        """The export an unanswered create started: the version's ``Doing`` one, or a ``Done`` one it did
        not replace."""
        if not record.has_record or record.export_id == replaced:
            return None
        if record.state in RUNNING_STATES or record.state is ExportState.DONE:
            return record.export_id
        return None

    def _failed(self, export_id: str) -> str | None:
        record = self.hook.describe_export(self.model_id)
        if record.has_record and record.export_id == export_id and record.state is ExportState.FAIL:
            return f"export {export_id} of {self.model_id} is in state Fail"
        if is_missing(record, export_id):
            return (f"export {export_id} of {self.model_id} is no longer listed (Qianfan leaves failed exports "
                    f"out; the version's current export is {record.export_id or 'none'})")
        return None


class QianfanDownloadExportOperator(HookPerTask, DownloadAndArchiveOperator):
    """Download a ``Done`` export (streaming, resumable, md5 and size checked) and archive it under its export id.

    Each URL is fetched right before use with a fresh DescribeModelExportTask; the manifest's ``source``
    holds ``modelId`` and ``exportId``.

    :param model_id: model version id, templated.
    :param export_id: the export to archive (the artifact key), templated.
    """

    provider = PROVIDER
    hook_class = QianfanHook
    template_fields = (*DownloadAndArchiveOperator.template_fields, "model_id", "export_id")

    def __init__(
        self, *, model_id: str, export_id: str, conn_id: str = QianfanHook.default_conn_name, **kwargs: Any
    ) -> None:
        super().__init__(artifact_key=export_id, source={"modelId": model_id, "exportId": export_id}, **kwargs)
        self.model_id = model_id
        self.export_id = export_id
        self.conn_id = conn_id

    def verify_tls(self) -> bool:
        return self.hook.client.verify

    def remote_file(self, context: Context) -> RemoteFile:
        record = self.hook.describe_export(self.model_id)
        if record.export_id != self.export_id or record.state is not ExportState.DONE or not record.download_url:
            raise FatalProviderError(
                PROVIDER,
                f"export {self.export_id} of {self.model_id} is not downloadable: Describe lists "
                f"{record.export_id or 'no export'} in state {record.state.value if record.state else None}",
                hint="run the DAG again to create or reuse a finished export",
            )
        return RemoteFile(url=record.download_url, filename=record.file_name or f"{self.export_id}.tar",
                          size=record.file_size, md5=record.md5)
