"""Qianfan model-export states, in one place for the sensor's poke and the trigger's poll.

The documentation contradicts itself: the examples call the field ``state`` with ``"done"``, the table
calls it ``status`` with ``Doing`` / ``Done`` / ``Fail``. Both names and any case are accepted.
It also says DescribeModelExportTask leaves failed tasks out, so an export that was ``Doing`` and then
disappears (``hasRecord`` false, or the export listed before ours in its place) has most likely failed: after a
grace period it counts as failed instead of waiting for the deadline. Any other export in its place is newer
(another run's force_new_export replaced ours): the wait follows it (docs/exactly-once.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from artifact_harvest.core.errors import MalformedResponseError
from artifact_harvest.core.polling import PollResult

log = logging.getLogger(__name__)

PROVIDER = "qianfan"


class ExportState(str, Enum):
    DOING = "Doing"
    DONE = "Done"
    FAIL = "Fail"

    @classmethod
    def parse(cls, value: Any) -> ExportState | None:
        """Any case (``done``, ``Done``, ``DONE``); None for an undocumented value (judged as still running)."""
        for state in cls:
            if isinstance(value, str) and value.strip().lower() == state.value.lower():
                return state
        return None


RUNNING_STATES = frozenset({ExportState.DOING})
FAILED_STATES = frozenset({ExportState.FAIL})


@dataclass(frozen=True)
class ExportRecord:
    """The ``result`` of DescribeModelExportTask; the signed ``download_url`` stays out of repr and payloads."""

    has_record: bool
    export_id: str | None = None
    state: ExportState | None = None
    file_name: str | None = None
    file_size: int | None = None
    md5: str | None = None
    download_url: str | None = field(default=None, repr=False)
    #: the state as Qianfan spelled it (``state`` is None when that spelling is undocumented)
    raw_state: Any = None

    @classmethod
    def from_result(cls, result: dict[str, Any]) -> ExportRecord:
        if not result.get("hasRecord"):
            return cls(has_record=False)
        raw_state = result.get("state", result.get("status"))
        if raw_state is None:
            raise MalformedResponseError(PROVIDER, "state", "is missing (neither 'state' nor 'status' present)")
        size = result.get("fileSize")
        return cls(
            has_record=True,
            export_id=result.get("exportId"),
            state=ExportState.parse(raw_state),
            file_name=result.get("fileName"),
            file_size=int(size) if size is not None else None,
            md5=result.get("md5"),
            download_url=result.get("downloadUrl"),
            raw_state=raw_state,
        )

    def payload(self, model_id: str) -> dict[str, Any]:
        """What downstream tasks may see (XCom, events): ids and file facts, never the URL."""
        return {
            "modelId": model_id,
            "exportId": self.export_id,
            "fileName": self.file_name,
            "fileSize": self.file_size,
            "md5": self.md5,
        }


def replaced_by(record: ExportRecord, export_id: str | None, listed_before: str | None) -> str | None:
    """The newer export listed in place of the awaited one, or None.

    ``listed_before``: the export the version listed before this run's create ("" for none; None when
    unknown, e.g. the create attached to an export it did not start). Only an export other than both is
    newer; the one listed before showing again means ours is gone (failed).
    """
    if export_id is None or listed_before is None or not record.has_record:
        return None
    return record.export_id if record.export_id not in (export_id, listed_before or None) else None


def is_missing(record: ExportRecord, export_id: str | None, listed_before: str | None = None) -> bool:
    """True when Describe does not list the awaited export (no record, or an export that is not newer)."""
    if not record.has_record:
        return True
    return export_id is not None and record.export_id != export_id and not replaced_by(record, export_id,
                                                                                       listed_before)


@dataclass
class VanishWatch:
    """Remembers whether the export must exist (export id known, or ``Doing`` seen) and since when it is gone.

    Triggers keep no state across triggerer restarts: a known export id makes ``expect_record`` true from
    the start, and a restart only restarts the grace period (waits longer, never fails early).
    """

    expect_record: bool = False
    missing_since: float | None = None

    def missing_for(self, record: ExportRecord, export_id: str | None, now: float,
                    listed_before: str | None = None) -> float | None:
        if not is_missing(record, export_id, listed_before):
            self.missing_since = None
            self.expect_record = self.expect_record or record.state is ExportState.DOING
            return None
        if not self.expect_record:
            return None
        if self.missing_since is None:
            self.missing_since = now
        return now - self.missing_since


def judge(
    record: ExportRecord,
    *,
    model_id: str,
    export_id: str | None = None,
    missing_for: float | None = None,
    missing_grace_seconds: float = 0.0,
    listed_before: str | None = None,
) -> PollResult:
    """One answer as a :class:`PollResult`.

    ``export_id``: the export being waited for (None: whatever the version's current export is).
    ``listed_before``: see :func:`replaced_by`; a newer export in place of ours is followed, not failed.
    ``missing_for``: seconds the awaited export has been absent (see :class:`VanishWatch`); None when it is
    not expected to exist yet, so an absent record simply means "no export started".
    """
    if newer := replaced_by(record, export_id, listed_before):
        if record.state in FAILED_STATES:
            return PollResult.failed(f"export {export_id} of {model_id} was replaced by export {newer}, which "
                                     "failed", modelId=model_id, exportId=newer, replacesExportId=export_id)
        if record.state is ExportState.DONE:
            return PollResult.success(f"export {export_id} of {model_id} was replaced by export {newer}, a newer one "
                                      f"(another run's force_new_export), which is done ({record.file_size} bytes)",
                                      **record.payload(model_id), replacesExportId=export_id)
        return PollResult.running(f"export {export_id} of {model_id} was replaced by export {newer}, which is "
                                  "still being packaged")
    if is_missing(record, export_id, listed_before):
        what = f"export {export_id} of {model_id}" if export_id else f"the export of {model_id}"
        if missing_for is None:
            return PollResult.running(f"{model_id} has no export yet")
        if missing_for >= missing_grace_seconds:
            return PollResult.failed(
                f"{what} was exporting, then disappeared and is still gone after {missing_for:.0f}s "
                "(Qianfan does not list failed exports, so it most likely failed)",
                modelId=model_id, exportId=export_id,
            )
        return PollResult.running(f"{what} is not listed (gone {missing_for:.0f}s of {missing_grace_seconds:.0f}s grace)")
    if record.state in FAILED_STATES:
        return PollResult.failed(f"export {record.export_id} of {model_id} failed (state {record.state.value})",
                                 modelId=model_id, exportId=record.export_id)
    if record.state is ExportState.DONE:
        return PollResult.success(f"export {record.export_id} of {model_id} is done ({record.file_size} bytes)",
                                  **record.payload(model_id))
    if record.state is None:
        log.warning("export %s of %s reported an undocumented state %r; polling on", record.export_id, model_id,
                    record.raw_state)
        return PollResult.running(f"export {record.export_id} of {model_id} has undocumented state "
                                  f"{record.raw_state!r}; polling on")
    return PollResult.running(f"export {record.export_id} of {model_id} is exporting")
