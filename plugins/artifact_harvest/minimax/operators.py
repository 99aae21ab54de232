"""MiniMax operators: submit a video or speech task once, and download-and-archive a file by ``file_id``."""

from __future__ import annotations

import hashlib
import json
import tarfile
import zipfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from airflow.sdk import BaseOperator, Context

from artifact_harvest.core.archive import Archiver
from artifact_harvest.core.transfer import DownloadedFile, RemoteFile
from artifact_harvest.core.errors import ProviderError
from artifact_harvest.core.hook import HookPerTask
from artifact_harvest.core.idempotency import remember, remembered, submit_once
from artifact_harvest.core.redact import redact_url
from artifact_harvest.core.operators import DownloadAndArchiveOperator
from artifact_harvest.core.params import as_bool
from artifact_harvest.core.polling import Phase
from artifact_harvest.core.usage import Quantity, Usage, push as push_usage
from artifact_harvest.minimax.hook import OUTPUT_PURPOSES, MiniMaxFile, MiniMaxHook
from artifact_harvest.minimax.status import PROVIDER, TaskKind, judge_task, normalise_file_id
from artifact_harvest.minimax.validation import check_prompt, check_speech, check_video

AUDIO_SUFFIXES = {".mp3", ".wav", ".flac", ".pcm", ".m4a", ".aac", ".ogg", ".opus"}
SUBTITLE_SUFFIXES = {".srt", ".vtt", ".lrc", ".titles"}
#: task state key: ``usage_characters`` of the speech create answer, kept for a retry that re-attaches
CHARACTERS_KEY = "minimax_usage_characters"


#: what a person checks when MiniMax may have accepted a create whose answer never arrived
IN_DOUBT_HELP = (
    "MiniMax may have started (and billed) the {what} task: check the MiniMax console (platform.minimax.io → "
    "Account → Billing/Usage, and the generation history of this API key) for a {what} task created at that "
    "time. If it is there, archive its file with the minimax_archive_file DAG instead of paying again; if it "
    "is not, submit again (see below)."
)


class _MiniMaxCreateOperator(HookPerTask, BaseOperator):
    """Submit once per task instance; MiniMax has no lookup, so an unanswered create fails fast (see README).

    :param resubmit_if_in_doubt: when an earlier create may have been accepted but its answer was lost, send
        it again instead of failing (templated; may pay twice).
    :param resubmit_failed: when the task an earlier try stored ended ``Fail``/``Expired``, create a new one
        instead of failing (templated).
    """

    hook_class = MiniMaxHook
    kind: TaskKind
    template_fields: Sequence[str] = ("resubmit_if_in_doubt", "resubmit_failed")

    def __init__(self, *, conn_id: str = MiniMaxHook.default_conn_name, resubmit_if_in_doubt: bool | str = False,
                 resubmit_failed: bool | str = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.resubmit_if_in_doubt = resubmit_if_in_doubt
        self.resubmit_failed = resubmit_failed

    def validate(self) -> None:
        """MiniMax's own rules, checked before anything is marked in flight or sent (and paid for)."""

    def create(self) -> str:
        raise NotImplementedError

    def usage(self, context: Context) -> Usage:
        """What this task's job uses, handed to the download step in XCom (``core.usage``)."""
        return Usage()

    def execute(self, context: Context) -> str:
        self.validate()
        task_id = submit_once(
            context, "minimax_task_id", self.create, failed=self._failed,
            resubmit_failed=as_bool(self.resubmit_failed, "resubmit_failed", PROVIDER),
            resubmit_if_in_doubt=as_bool(self.resubmit_if_in_doubt, "resubmit_if_in_doubt", PROVIDER),
            in_doubt_help=IN_DOUBT_HELP.format(what=self.kind.value),
        )
        push_usage(context, self.usage(context))
        return task_id

    def _failed(self, task_id: str) -> str | None:
        result = judge_task(self.kind, self.hook.query_task(self.kind, task_id))
        return result.message if result.phase is Phase.FAILED else None


class MiniMaxCreateVideoOperator(_MiniMaxCreateOperator):
    """``POST /v1/video_generation`` once per task instance (a retry re-attaches); returns the task id."""

    kind = TaskKind.VIDEO
    template_fields = (*_MiniMaxCreateOperator.template_fields, "prompt", "model", "duration", "resolution",
                       "first_frame_image")

    def __init__(self, *, prompt: str, model: str = "MiniMax-Hailuo-02", duration: int | str | None = None,
                 resolution: str | None = None, first_frame_image: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prompt, self.model, self.duration = prompt, model, duration
        self.resolution, self.first_frame_image = resolution, first_frame_image

    def _options(self) -> dict[str, Any]:
        # rendered templates are strings; an empty one means "not given"
        return {"duration": int(self.duration) if self.duration else None,
                "resolution": self.resolution or None, "first_frame_image": self.first_frame_image or None}

    def create(self) -> str:
        return self.hook.create_video(self.prompt, self.model, **self._options())

    def usage(self, context: Context) -> Usage:
        """The duration and resolution sent (the query reports the frame size, added at download)."""
        options = self._options()
        return Usage.of(
            video_seconds=Quantity.requested(options["duration"], "s") if options["duration"] else None,
            resolution=Quantity.requested(options["resolution"]) if options["resolution"] else None,
        )

    def validate(self) -> None:
        check_prompt(self.prompt)
        check_video(self.model, **self._options())


class MiniMaxCreateSpeechOperator(_MiniMaxCreateOperator):
    """``POST /v1/t2a_async_v2`` once per task instance (a retry re-attaches); returns the task id."""

    kind = TaskKind.SPEECH
    template_fields = (*_MiniMaxCreateOperator.template_fields, "text", "model", "voice_id", "audio_format")

    def __init__(self, *, text: str, voice_id: str, model: str = "speech-2.8-hd", audio_format: str = "mp3",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text, self.voice_id, self.model, self.audio_format = text, voice_id, model, audio_format
        self._characters: int | None = None

    def validate(self) -> None:
        check_speech(self.text, self.voice_id)

    def create(self) -> str:
        task_id, self._characters = self.hook.create_speech_metered(self.text, self.model, self.voice_id,
                                                                    audio_format=self.audio_format)
        return task_id

    def usage(self, context: Context) -> Usage:
        """``usage_characters`` of the create answer (kept for a retry); without it, the characters sent."""
        if self._characters is not None:
            remember(context, CHARACTERS_KEY, self._characters)
        characters = remembered(context, CHARACTERS_KEY)
        if characters is not None:
            return Usage.of(characters=Quantity.reported(int(characters), "characters"))
        return Usage.of(characters=Quantity.requested(len(self.text), "characters"))


class MiniMaxDownloadOperator(HookPerTask, DownloadAndArchiveOperator):
    """Archive MiniMax file ``file_id`` under artifact key ``file_id``.

    Every ``remote_file`` call asks files/retrieve for a fresh signed URL (1 h for video, 9 h for speech),
    so a URL that expires mid-download is replaced and the download resumes. Speech bundles (tar or zip)
    also get their members listed in the manifest, read in place: nothing is extracted.
    """

    provider = PROVIDER
    hook_class = MiniMaxHook
    template_fields = (*DownloadAndArchiveOperator.template_fields, "minimax_task_id")
    lineage_source_keys = ("file_id", "task_id")

    def __init__(self, *, file_id: int | str, minimax_task_id: str | None = None,
                 conn_id: str = MiniMaxHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(artifact_key=str(file_id), **kwargs)
        self.minimax_task_id = minimax_task_id
        self.conn_id = conn_id
        self._file: MiniMaxFile | None = None

    def execute(self, context: Context) -> dict:
        file_id = normalise_file_id(self.artifact_key)
        self.artifact_key = str(file_id)
        self.source = {**self.source, "file_id": file_id}
        if self.minimax_task_id:
            self.source["task_id"] = str(self.minimax_task_id)
        return super().execute(context)

    def remote_file(self, context: Context) -> RemoteFile:
        file = self.hook.retrieve_file(self.artifact_key)
        if not file.download_url:
            raise ProviderError(PROVIDER, f"file {file.file_id} has no download URL yet", code="not_ready")
        self.log.info("fresh download URL for file %s: %s", file.file_id, redact_url(file.download_url))
        self._file = file
        return RemoteFile(url=file.download_url, filename=file.filename or f"{file.file_id}.bin",
                          size=file.bytes or None)

    def manifest_extra(self, downloaded: DownloadedFile, context: Context) -> dict:
        extra: dict[str, Any] = {"minimax_file": self._file.summary() if self._file else {}}
        members = bundle_members(downloaded.path)
        if members is not None:
            extra["members"] = members
        return extra

    def usage(self, downloaded: DownloadedFile, context: Context) -> Usage:
        """The create step's (XCom), plus a video's frame size from the task query and a speech bundle's
        ``usage_characters`` from its extra JSON when the create step gave none (e.g. the archive DAGs)."""
        usage = super().usage(downloaded, context)
        purpose = self._file.purpose if self._file else ""
        if purpose == "video_generation" and self.minimax_task_id:
            try:
                answer = self.hook.query_task(TaskKind.VIDEO, str(self.minimax_task_id))
            except ProviderError as exc:
                self.log.warning("the video's frame size is unknown: the task query failed: %s", exc)
                answer = {}
            width, height = answer.get("video_width"), answer.get("video_height")
            if width and height:
                usage = usage.merge(Usage.of(resolution=Quantity.reported(f"{width}x{height}", "px")))
        if "characters" not in usage and (characters := bundle_characters(downloaded.path)) is not None:
            usage = usage.merge(Usage.of(characters=Quantity.reported(characters, "characters")))
        return usage


def unarchived_files_between(start: datetime, end: datetime,
                             conn_id: str = MiniMaxHook.default_conn_name) -> list[dict[str, Any]]:
    """Output files (every purpose in ``OUTPUT_PURPOSES``) created in ``[start, end)`` and not archived yet,
    as ``{"file_id": ...}`` kwargs for a mapped :class:`MiniMaxDownloadOperator`. Keyed on the interval,
    so a rerun or a backfill finds the same files and skips what an earlier run archived."""
    hook, archiver = MiniMaxHook(conn_id), Archiver()
    lo, hi = start.timestamp(), end.timestamp()
    found = [file for purpose in OUTPUT_PURPOSES for file in hook.list_files(purpose) if lo <= file.created_at < hi]
    return [{"file_id": file.file_id} for file in sorted(found, key=lambda f: (f.created_at, f.file_id))
            if not archiver.is_archived(PROVIDER, str(file.file_id))]


def bundle_members(path: Path) -> list[dict[str, Any]] | None:
    """The regular files inside a tar or zip bundle (name, size, sha256, kind), read without extracting;
    None when ``path`` is no bundle. Names are recorded, never used as paths."""
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            return [_member(m.name, m.size, tar.extractfile(m)) for m in tar.getmembers() if m.isfile()]
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return [_member(i.filename, i.file_size, archive.open(i)) for i in archive.infolist() if not i.is_dir()]
    return None


def bundle_characters(path: Path) -> int | None:
    """``usage_characters`` of a speech bundle's extra JSON member (a tar), None when there is none."""
    if not tarfile.is_tarfile(path):
        return None
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            if member.isfile() and _kind(PurePosixPath(member.name)) == "extra" and member.size < 1 << 20:
                stream = tar.extractfile(member)
                try:
                    characters = json.loads(stream.read()).get("usage_characters") if stream else None
                except (ValueError, AttributeError):
                    continue
                if isinstance(characters, int) and not isinstance(characters, bool):
                    return characters
    return None


def _member(name: str, size: int, stream: IO[bytes] | None) -> dict[str, Any]:
    digest = hashlib.sha256()
    if stream is not None:
        with stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
    pure = PurePosixPath(name)
    entry = {"name": name, "size": size, "sha256": digest.hexdigest(), "kind": _kind(pure)}
    if pure.is_absolute() or ".." in pure.parts:
        entry["unsafe_name"] = True
    return entry


def _kind(name: PurePosixPath) -> str:
    suffix = name.suffix.lower()
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    if suffix in SUBTITLE_SUFFIXES or "title" in name.name.lower():
        return "subtitles"
    if suffix == ".extra" or "extra" in name.name.lower() or suffix == ".json":
        return "extra"
    return "other"
