"""MiniMax API hook: video generation, asynchronous speech and the Files API, sync and async.

MiniMax answers errors with HTTP 200 and ``base_resp.status_code``; :meth:`MiniMaxHook.parse` checks that
envelope on every call, so rate limits (1002, 1039, 2045) and transient failures go through the shared retry
rule and terminal codes fail at once with what they mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from artifact_harvest.core.errors import (
    FatalProviderError,
    MalformedResponseError,
    ProviderError,
    TransientProviderError,
)
from artifact_harvest.core.hook import ProviderHook
from artifact_harvest.core.http import ApiClient, ApiResponse, Redactor
from artifact_harvest.minimax.status import PROVIDER, TaskKind, normalise_file_id

VIDEO_MODELS = (
    "MiniMax-Hailuo-2.3",
    "MiniMax-Hailuo-2.3-Fast",
    "MiniMax-Hailuo-02",
    "T2V-01",
    "T2V-01-Director",
    "I2V-01",
    "I2V-01-Director",
    "I2V-01-live",
    "S2V-01",
)
# API-FACTS documents speech-2.8-hd; the others are MiniMax's published speech model family
SPEECH_MODELS = ("speech-2.8-hd", "speech-2.8-turbo", "speech-2.6-hd", "speech-2.6-turbo", "speech-02-hd",
                 "speech-02-turbo")
OUTPUT_PURPOSES = ("video_generation", "t2a_async")

RATE_LIMIT_CODES = {1002: "rate limit", 1039: "token limit (TPM)", 2045: "rate growth limit"}
TRANSIENT_CODES = {
    1000: "unknown error",
    1001: "request timeout",
    1013: "internal service error",
    1024: "internal error",
    1033: "system error",
}
FATAL_CODES = {
    1004: ("authentication failed", "check the API key and that it belongs to this host's region"),
    2049: ("invalid API key", "check the API key in the connection"),
    1008: ("insufficient balance", "top up the MiniMax account"),
    1026: ("input rejected as sensitive content", "change the prompt or input"),
    1027: ("output rejected as sensitive content", "change the prompt or input"),
    2013: ("invalid parameters", "fix the request parameters"),
    2056: ("usage limit exceeded", "wait for the next usage window or upgrade the plan"),
}


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


@dataclass(frozen=True)
class _Call:
    """One endpoint call, built once and sent by either twin."""

    method: str
    path: str
    finish: Callable[[dict[str, Any]], Any]
    params: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] | None = None


def _explain(meaning: str, message: str) -> str:
    """The code's meaning in front of the provider's message, unless the message already says it."""
    return message if meaning.lower() in message.lower() else f"{meaning}: {message}"


def _task_id(answer: dict[str, Any]) -> str:
    if answer.get("task_id") in (None, ""):
        raise MalformedResponseError(PROVIDER, "task_id", "is missing from the create answer")
    return str(answer["task_id"])


def _file_list(answer: dict[str, Any]) -> list[MiniMaxFile]:
    return [MiniMaxFile.from_api(f) for f in answer.get("files") or []]


class MiniMaxHook(ProviderHook):
    """Connection ``minimax``: host = base URL, password = API key, extras ``path_prefix`` and ``group_id``."""

    conn_name_attr = "conn_id"
    default_conn_name = "minimax_default"
    conn_type = "minimax"
    hook_name = "MiniMax"
    provider: ClassVar[str] = PROVIDER
    default_host: ClassVar[str] = "https://api.minimax.io"

    _group_id: str | None = None

    # -- connection and envelope ---------------------------------------------------------------------
    def build_client(self, conn: Any, extra: dict[str, Any]) -> ApiClient:
        api_key = self.require_secret(conn, conn.password, "password (API key)")
        prefix = str(extra.get("path_prefix") or "").strip().strip("/")
        self._group_id = str(extra.get("group_id") or "").strip() or None
        return ApiClient(
            provider=PROVIDER,
            base_url=self.base_url(conn) + (f"/{prefix}" if prefix else ""),
            parse=self.parse,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=self.timeout,
            retry=self.retry,
            verify=self.verify_tls(extra),
            redactor=Redactor([api_key]),
        )

    @staticmethod
    def parse(resp: ApiResponse) -> dict[str, Any]:
        """Check ``base_resp`` on every answer (errors arrive with HTTP 200)."""
        if resp.status != 200 and not resp.body.lstrip().startswith(b"{"):
            raise resp.http_error()
        answer = resp.json()
        base = answer.get("base_resp") if isinstance(answer, dict) else None
        if not isinstance(base, dict) or "status_code" not in base:
            if resp.status != 200:
                raise resp.http_error()
            raise MalformedResponseError(PROVIDER, "base_resp", "is missing", request_id=resp.request_id)
        code = int(base["status_code"])
        if code == 0 and resp.status == 200:
            return answer
        message = str(base.get("status_msg") or "no message")
        trace_id = answer.get("trace_id") or resp.headers.get("Trace-Id")
        kwargs = dict(code=code, request_id=trace_id or resp.request_id)
        if code in RATE_LIMIT_CODES:
            raise TransientProviderError(PROVIDER, _explain(RATE_LIMIT_CODES[code], message),
                                         retry_after=resp.retry_after, **kwargs)
        if code in TRANSIENT_CODES:
            raise TransientProviderError(PROVIDER, _explain(TRANSIENT_CODES[code], message), **kwargs)
        if code in FATAL_CODES:
            meaning, hint = FATAL_CODES[code]
            raise FatalProviderError(PROVIDER, _explain(meaning, message), hint=hint, **kwargs)
        if resp.status != 200:
            raise resp.http_error(message, code=code)
        raise ProviderError(PROVIDER, message, **kwargs)

    def _send(self, call: _Call) -> Any:
        client = self.client  # first: building the client reads group_id for _query
        return call.finish(client.call(call.method, call.path, params=self._query(call), json=call.body))

    async def _asend(self, call: _Call) -> Any:
        client = await self.aclient()
        return call.finish(await client.acall(call.method, call.path, params=self._query(call), json=call.body))

    def _query(self, call: _Call) -> dict[str, Any]:
        """``GroupId`` only when the connection sets one (current accounts reject it with 1004)."""
        return {**call.params, "GroupId": self._group_id} if self._group_id else call.params

    # -- requests ------------------------------------------------------------------------------------
    @staticmethod
    def _create_video(prompt: str, model: str, *, duration: int | None = None, resolution: str | None = None,
                      first_frame_image: str | None = None, prompt_optimizer: bool | None = None) -> _Call:
        body = {"model": model, "prompt": prompt, "duration": duration, "resolution": resolution,
                "first_frame_image": first_frame_image or None, "prompt_optimizer": prompt_optimizer}
        return _Call("POST", "/v1/video_generation", _task_id, body={k: v for k, v in body.items() if v is not None})

    @staticmethod
    def _create_speech(text: str, model: str, voice_id: str, *, audio_format: str = "mp3",
                       speed: float | None = None) -> _Call:
        voice = {"voice_id": voice_id, **({"speed": speed} if speed is not None else {})}
        body = {"model": model, "text": text, "voice_setting": voice, "audio_setting": {"format": audio_format}}
        return _Call("POST", "/v1/t2a_async_v2", _task_id, body=body)

    @staticmethod
    def _query_task(kind: TaskKind | str, task_id: str) -> _Call:
        path = {TaskKind.VIDEO: "/v1/query/video_generation",
                TaskKind.SPEECH: "/v1/query/t2a_async_query_v2"}[TaskKind(kind)]
        return _Call("GET", path, lambda answer: answer, params={"task_id": task_id})

    @staticmethod
    def _retrieve_file(file_id: int | str) -> _Call:
        return _Call("GET", "/v1/files/retrieve", lambda a: MiniMaxFile.from_api(a.get("file")),
                     params={"file_id": normalise_file_id(file_id)})

    @staticmethod
    def _list_files(purpose: str) -> _Call:
        return _Call("GET", "/v1/files/list", _file_list, params={"purpose": purpose})

    @staticmethod
    def _delete_file(file_id: int | str, purpose: str) -> _Call:
        return _Call("POST", "/v1/files/delete", lambda answer: None,
                     body={"file_id": normalise_file_id(file_id), "purpose": purpose})

    # -- endpoints: sync on workers, async twins for triggers ---------------------------------------
    def create_video(self, prompt: str, model: str, **options: Any) -> str:
        """``POST /v1/video_generation`` → task id."""
        return self._send(self._create_video(prompt, model, **options))

    async def acreate_video(self, prompt: str, model: str, **options: Any) -> str:
        return await self._asend(self._create_video(prompt, model, **options))

    def create_speech(self, text: str, model: str, voice_id: str, **options: Any) -> str:
        """``POST /v1/t2a_async_v2`` → task id."""
        return self._send(self._create_speech(text, model, voice_id, **options))

    async def acreate_speech(self, text: str, model: str, voice_id: str, **options: Any) -> str:
        return await self._asend(self._create_speech(text, model, voice_id, **options))

    def query_task(self, kind: TaskKind | str, task_id: str) -> dict[str, Any]:
        """The raw query answer of a video or speech task (judge it with ``status.judge_task``)."""
        return self._send(self._query_task(kind, task_id))

    async def aquery_task(self, kind: TaskKind | str, task_id: str) -> dict[str, Any]:
        return await self._asend(self._query_task(kind, task_id))

    def query_video(self, task_id: str) -> dict[str, Any]:
        return self.query_task(TaskKind.VIDEO, task_id)

    async def aquery_video(self, task_id: str) -> dict[str, Any]:
        return await self.aquery_task(TaskKind.VIDEO, task_id)

    def query_speech(self, task_id: str) -> dict[str, Any]:
        return self.query_task(TaskKind.SPEECH, task_id)

    async def aquery_speech(self, task_id: str) -> dict[str, Any]:
        return await self.aquery_task(TaskKind.SPEECH, task_id)

    def retrieve_file(self, file_id: int | str) -> MiniMaxFile:
        """``GET /v1/files/retrieve``: metadata and a fresh signed ``download_url``."""
        return self._send(self._retrieve_file(file_id))

    async def aretrieve_file(self, file_id: int | str) -> MiniMaxFile:
        return await self._asend(self._retrieve_file(file_id))

    def list_files(self, purpose: str) -> list[MiniMaxFile]:
        """``GET /v1/files/list?purpose=``."""
        return self._send(self._list_files(purpose))

    async def alist_files(self, purpose: str) -> list[MiniMaxFile]:
        return await self._asend(self._list_files(purpose))

    def delete_file(self, file_id: int | str, purpose: str) -> None:
        """``POST /v1/files/delete``."""
        self._send(self._delete_file(file_id, purpose))

    async def adelete_file(self, file_id: int | str, purpose: str) -> None:
        await self._asend(self._delete_file(file_id, purpose))

    # -- the connection form's Test button -----------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """One ``files/list`` call (read-only, free): MiniMax answers a bad key with 1004 or 2049."""
        try:
            files = self.list_files(OUTPUT_PURPOSES[0])
        except ProviderError as exc:
            return False, str(exc)
        return True, f"MiniMax accepted the API key (status_code 0, {len(files)} {OUTPUT_PURPOSES[0]} files listed)"
