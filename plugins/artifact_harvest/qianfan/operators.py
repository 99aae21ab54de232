"""Start (or reuse) a Qianfan model export on the worker, and download-and-archive a finished one."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context

from artifact_harvest.core.transfer import DownloadedFile, RemoteFile
from artifact_harvest.core.errors import FatalProviderError, TransientProviderError
from artifact_harvest.core.hook import HookPerTask
from artifact_harvest.core.idempotency import remember, remembered, submit_once
from artifact_harvest.core.operators import DownloadAndArchiveOperator
from artifact_harvest.core.params import as_bool
from artifact_harvest.core.usage import Quantity, Usage
from artifact_harvest.qianfan.hook import QianfanHook
from artifact_harvest.qianfan.status import PROVIDER, RUNNING_STATES, ExportRecord, ExportState
from artifact_harvest.qianfan.validation import check_model_version_id

EXPORT_ID_KEY = "qianfan_export_id"
#: the finished export a forced create replaces: reconciliation must not mistake it for the new one
REPLACED_KEY = "qianfan_replaced_export_id"


class QianfanCreateModelExportOperator(HookPerTask, BaseOperator):
    """Make sure the model version has an export and return ``{"modelId", "exportId", "listedBefore"}``.

    ``listedBefore`` is the export the version listed before this task's create ("" for none), None when the
    task reused or attached to an export: the wait step follows an export newer than both (a replacement).

    Idempotent: a ``Done`` export is reused (unless ``force_new_export``), a ``Doing`` one is attached to
    (even when forced: the version is being packaged already), and the export id is stored in the task
    state store the moment it is known, so a retried task never creates a second export.

    :param model_id: model version id (``amv-...``), templated.
    :param force_new_export: create a new export even when a finished one exists, templated.
    :param resubmit_failed: when the export an earlier try created failed, create a new one instead of
        failing (templated). Also covers a create whose answer was lost and whose export is not listed:
        Describe leaves failed exports out, so that export was never made or failed.
    :param resubmit_if_in_doubt: create again when a lost create's export cannot be found (templated).

    A create whose answer was lost (or whose worker died before the id was stored) is found again with
    DescribeModelExportTask: any export listed other than the one listed before the create was sent is
    this create's (or a newer one of the same version). An export replaced by a newer one of the same
    version (another run's ``force_new_export``) is not a failure: the newer one is the version's package.
    See docs/exactly-once.md.
    """

    hook_class = QianfanHook
    template_fields = ("model_id", "force_new_export", "resubmit_failed", "resubmit_if_in_doubt")

    def __init__(
        self,
        *,
        model_id: str,
        force_new_export: bool | str = False,
        resubmit_failed: bool | str = False,
        resubmit_if_in_doubt: bool | str = False,
        conn_id: str = QianfanHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.force_new_export = force_new_export
        self.resubmit_failed = resubmit_failed
        self.resubmit_if_in_doubt = resubmit_if_in_doubt
        self.conn_id = conn_id
        self._newer: str | None = None

    def execute(self, context: Context) -> dict[str, str]:
        self.model_id = check_model_version_id(self.model_id)  # Qianfan's rule before any call
        force = as_bool(self.force_new_export, "force_new_export", PROVIDER)
        resubmit_failed = as_bool(self.resubmit_failed, "resubmit_failed", PROVIDER)
        listed: dict[str, ExportRecord] = {}

        def sent() -> dict[str, Any]:
            """The export listed before the create: seeing it (or none) again means ours is not listed."""
            listed["before"] = current = self.hook.describe_export(self.model_id)
            return {"model_id": self.model_id, "listed": current.export_id or ""}

        def submit() -> str:
            current = listed["before"]
            if current.has_record and current.state in RUNNING_STATES:
                self.log.info("attaching to export %s of %s, which is running", current.export_id, self.model_id)
                return current.export_id
            if current.has_record and current.state is ExportState.DONE and not force:
                self.log.info("reusing finished export %s of %s", current.export_id, self.model_id)
                return current.export_id
            remember(context, REPLACED_KEY, current.export_id or "")  # the store refuses None
            return self.hook.create_export(self.model_id)

        def find(record: dict[str, Any]) -> str | None:
            before = record.get("listed", remembered(context, REPLACED_KEY) or "")
            return self._created(self.hook.describe_export(self.model_id), before or None)

        export_id = submit_once(
            context, EXPORT_ID_KEY, submit, find=find, failed=lambda e: self._failed(e, context), sent=sent,
            resubmit_failed=resubmit_failed,
            # not listed = never created, or created and failed (Describe hides failed exports): either way no
            # live export exists, so resubmit_failed allows a create as much as resubmit_if_in_doubt does
            resubmit_if_in_doubt=resubmit_failed or as_bool(self.resubmit_if_in_doubt, "resubmit_if_in_doubt",
                                                            PROVIDER),
            in_doubt_help=(
                f"Describe lists no export of {self.model_id} newer than the one listed before the create, so the "
                "create was not processed, or its export failed (Qianfan leaves failed exports out). Check the "
                f"Qianfan console (My models → {self.model_id} → export records); resubmit_failed=True allows a "
                "new create."
            ),
        )
        if self._newer:
            self.log.warning("export %s of %s was replaced by the newer export %s of the same version (another "
                             "run's force_new_export); going on with %s", export_id, self.model_id, self._newer,
                             self._newer)
            export_id = self._newer
        return {"modelId": self.model_id, "exportId": export_id, "listedBefore": remembered(context, REPLACED_KEY)}

    @staticmethod
    def _created(record: ExportRecord, before: str | None) -> str | None:
        """The export an unanswered create started: whatever Describe lists other than ``before``."""
        if not record.has_record or record.export_id == before:
            return None
        return record.export_id

    def _failed(self, export_id: str, context: Context) -> str | None:
        """Why the stored export cannot be re-attached; a newer listed export of the version is not a failure."""
        record = self.hook.describe_export(self.model_id)
        if record.has_record and record.export_id == export_id:
            return f"export {export_id} of {self.model_id} is in state Fail" if record.state is ExportState.FAIL \
                else None
        before = remembered(context, REPLACED_KEY) or None
        if not record.has_record or record.export_id == before:
            return (f"export {export_id} of {self.model_id} is no longer listed (Qianfan leaves failed exports "
                    f"out; the version's current export is {record.export_id or 'none'})")
        if record.state is ExportState.FAIL:
            return f"export {export_id} of {self.model_id} was replaced by {record.export_id}, which failed"
        self._newer = record.export_id
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
    lineage_source_keys = ("modelId", "exportId", "replacesExportId")

    def __init__(
        self, *, model_id: str, export_id: str, conn_id: str = QianfanHook.default_conn_name, **kwargs: Any
    ) -> None:
        super().__init__(artifact_key=export_id, source={"modelId": model_id, "exportId": export_id}, **kwargs)
        self.model_id = model_id
        self.export_id = export_id
        self.conn_id = conn_id
        self._file_size: int | None = None

    def execute(self, context: Context) -> dict:
        """An export replaced by a newer ``Done`` one of the same version (another run's force_new_export)
        cannot be fetched any more (Describe lists only the newest): the newer one is archived, under its own
        export id, so runs that end on the same export archive it once. Costs one Describe."""
        record = self.hook.describe_export(self.model_id)
        if record.has_record and record.export_id and record.export_id != self.export_id:
            if record.state in RUNNING_STATES:
                raise TransientProviderError(
                    PROVIDER, f"export {self.export_id} of {self.model_id} was replaced by export "
                    f"{record.export_id}, which is still being packaged; a retry archives it once it is Done")
            if record.state is ExportState.DONE:
                self.log.warning("export %s of %s was replaced by the newer export %s of the same version; "
                                 "archiving %s", self.export_id, self.model_id, record.export_id, record.export_id)
                self.source = {"modelId": self.model_id, "exportId": record.export_id,
                               "replacesExportId": self.export_id}
                self.export_id = self.artifact_key = record.export_id
        return super().execute(context)

    def remote_file(self, context: Context) -> RemoteFile:
        record = self.hook.describe_export(self.model_id)
        if record.export_id != self.export_id or record.state is not ExportState.DONE or not record.download_url:
            raise FatalProviderError(
                PROVIDER,
                f"export {self.export_id} of {self.model_id} is not downloadable: Describe lists "
                f"{record.export_id or 'no export'} in state {record.state.value if record.state else None}",
                hint="run the DAG again to create or reuse a finished export",
            )
        self._file_size = record.file_size
        return RemoteFile(url=record.download_url, filename=record.file_name or f"{self.export_id}.tar",
                          size=record.file_size, md5=record.md5)

    def usage(self, downloaded: DownloadedFile, context: Context) -> Usage:
        """The export's ``fileSize`` as Describe reports it; the archived bytes when it reports none."""
        size = Quantity.reported(self._file_size, "bytes") if self._file_size is not None \
            else Quantity.measured(downloaded.size, "bytes")
        return super().usage(downloaded, context).merge(Usage.of(export_size=size))
