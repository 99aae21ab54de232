"""The MiniMax status table, in one place: what is running, finished or failed, for video and speech tasks.

The video query documents ``Preparing | Queueing | Processing | Success | Fail`` while the official cli checks
``Failed``; the async-speech query documents both ``Processing/Success/Failed/Expired`` and their lower-case
forms. Statuses are therefore compared case-insensitively and both failure spellings are terminal. The
sensor's ``check`` (sync) and the trigger's ``poll`` (async) both call :func:`judge_task` / :func:`judge_file`.
The file object lives here too, so the hook imports this module and never the other way round.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from artifact_harvest.core.errors import MalformedResponseError
from artifact_harvest.core.polling import PollResult

log = logging.getLogger(__name__)

PROVIDER = "minimax"


class TaskKind(str, Enum):
    VIDEO = "video"
    SPEECH = "speech"


class TaskStatus(str, Enum):
    """Every documented spelling, lower-cased."""

    PREPARING = "preparing"
    QUEUEING = "queueing"
    PROCESSING = "processing"
    SUCCESS = "success"
    FAIL = "fail"
    FAILED = "failed"
    EXPIRED = "expired"

    @classmethod
    def parse(cls, value: Any) -> TaskStatus | None:
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            return None


RUNNING = frozenset({TaskStatus.PREPARING, TaskStatus.QUEUEING, TaskStatus.PROCESSING})
FAILED = frozenset({TaskStatus.FAIL, TaskStatus.FAILED, TaskStatus.EXPIRED})


def normalise_file_id(value: Any) -> int:
    """``file_id`` is a string in the video query and an integer everywhere else; files/retrieve wants int64."""
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise MalformedResponseError(PROVIDER, "file_id", f"is not an integer id: {value!r}") from None


@dataclass(frozen=True)
class MiniMaxFile:
    """A file object; ``download_url`` is signed and short-lived: use it at once, never store it."""

    file_id: int
    bytes: int
    created_at: int
    filename: str
    purpose: str
    download_url: str = field(default="", repr=False)

    @classmethod
    def from_api(cls, file: Any) -> MiniMaxFile:
        if not isinstance(file, dict):
            raise MalformedResponseError(PROVIDER, "file", f"is not an object: {type(file).__name__}")
        return cls(
            file_id=normalise_file_id(file.get("file_id")),
            bytes=int(file.get("bytes") or 0),
            created_at=int(file.get("created_at") or 0),
            filename=str(file.get("filename") or ""),
            purpose=str(file.get("purpose") or ""),
            download_url=str(file.get("download_url") or ""),
        )

    def summary(self) -> dict[str, Any]:
        """Everything but the URL: safe for XCom, events and manifests."""
        return {"file_id": self.file_id, "bytes": self.bytes, "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose}


def judge_task(kind: TaskKind | str, answer: dict[str, Any]) -> PollResult:
    """One query answer (video or speech) as a :class:`PollResult`; success carries ``task_id`` and ``file_id``."""
    kind = TaskKind(kind)
    task_id = str(answer.get("task_id", ""))
    raw = answer.get("status")
    status = TaskStatus.parse(raw)
    where = f"MiniMax {kind.value} task {task_id}"
    if status is TaskStatus.SUCCESS:
        if answer.get("file_id") in (None, ""):
            raise MalformedResponseError(PROVIDER, "file_id", f"missing although {where} succeeded")
        file_id = normalise_file_id(answer["file_id"])
        return PollResult.success(f"{where} succeeded: file {file_id}", task_id=task_id, file_id=file_id)
    if status in FAILED:
        return PollResult.failed(f"{where} ended with status {raw!r}", task_id=task_id)
    if status in RUNNING:
        return PollResult.running(f"{where} is {raw}")
    log.warning("%s reported an undocumented status %r; polling on", where, raw)
    return PollResult.running(f"{where} has undocumented status {raw!r}; polling on")


def judge_file(file: MiniMaxFile) -> PollResult:
    """One files/retrieve answer: ready once ``download_url`` is non-empty. The URL itself is never passed on."""
    if not file.download_url:
        return PollResult.running(f"MiniMax file {file.file_id} has no download URL yet")
    return PollResult.success(
        f"MiniMax file {file.file_id} is ready",
        file_id=file.file_id,
        bytes=file.bytes,
        filename=file.filename or f"{file.file_id}.bin",
    )
