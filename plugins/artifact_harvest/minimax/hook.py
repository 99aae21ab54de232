"""MiniMax API hook: video generation, asynchronous speech and the Files API, sync and async.

MiniMax answers errors with HTTP 200 and ``base_resp.status_code``; :meth:`MiniMaxHook.parse` checks that
envelope on every call and ``CODES`` says what each code means: rate limits (1002, 1039, 2045) and transient
failures go through the shared retry rule, terminal codes fail at once with what to fix.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from artifact_harvest.core.errors import MalformedResponseError, ProviderError
from artifact_harvest.core.hook import ProviderCodes, ProviderHook
from artifact_harvest.core.http import ApiClient, ApiResponse, Call
from artifact_harvest.minimax.status import PROVIDER, MiniMaxFile, TaskKind, normalise_file_id

__all__ = ["MiniMaxFile", "MiniMaxHook"]

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

#: base_resp codes (API-FACTS); their meanings go in front of MiniMax's message, which is often terse
CODES = ProviderCodes(
    refused=frozenset({1002, 1039, 2045}),
    transient=frozenset({1000, 1001, 1013, 1024, 1033}),
    fatal={
        1004: "check the API key and that it belongs to this host's region",
        2049: "check the API key in the connection",
        1026: "change the prompt or input",
        1027: "change the prompt or input",
        2013: "fix the request parameters",
    },
    quota={  # money or quota: no retry helps before someone pays or the window resets (core.retry_policy)
        1008: "top up the MiniMax account",
        2056: "wait for the next 5-hour usage window or upgrade the plan",
        1028: "top up the account or use a model the plan includes",
        1030: "top up the account or use a model the plan includes",
        2061: "top up the account or use a model the plan includes",
    },
    meanings={
        1002: "rate limit", 1039: "token limit (TPM)", 2045: "rate growth limit",
        1000: "unknown error", 1001: "request timeout", 1013: "internal service error", 1024: "internal error",
        1033: "system error",
        1004: "authentication failed", 2049: "invalid API key", 1008: "insufficient balance",
        1026: "input rejected as sensitive content", 1027: "output rejected as sensitive content",
        2013: "invalid parameters", 2056: "usage limit exceeded",
        1028: "quota exhausted or model not in the plan", 1030: "quota exhausted or model not in the plan",
        2061: "quota exhausted or model not in the plan",
    },
    status_with_code=False,  # MiniMax's errors come in HTTP 200 answers
)


def _task_id(answer: dict[str, Any]) -> str:
    if answer.get("task_id") in (None, ""):
        raise MalformedResponseError(PROVIDER, "task_id", "is missing from the create answer")
    return str(answer["task_id"])


def _file_list(answer: dict[str, Any]) -> list[MiniMaxFile]:
    return [MiniMaxFile.from_api(f) for f in answer.get("files") or []]


class MiniMaxHook(ProviderHook):
    """Connection ``minimax``: host = base URL, password = API key, extras ``path_prefix`` and ``group_id``."""

    default_conn_name = "minimax_default"
    conn_type = "minimax"
    hook_name = "MiniMax"
    provider: ClassVar[str] = PROVIDER
    default_host: ClassVar[str] = "https://api.minimax.io"
    codes: ClassVar[ProviderCodes] = CODES

    _group_id: str | None = None

    # -- connection and envelope ---------------------------------------------------------------------
    def build_client(self, conn: Any, extra: dict[str, Any]) -> ApiClient:
        api_key = self.require_secret(conn, conn.password, "password (API key)")
        prefix = str(extra.get("path_prefix") or "").strip().strip("/")
        self._group_id = str(extra.get("group_id") or "").strip() or None
        return self.new_client(extra, base_url=self.base_url(conn) + (f"/{prefix}" if prefix else ""),
                               headers={"Authorization": f"Bearer {api_key}"}, secrets=[api_key])

    def parse(self, resp: ApiResponse) -> dict[str, Any]:
        """The whole answer when ``base_resp.status_code`` is 0 (errors arrive with HTTP 200 too)."""
        answer = resp.json()
        base = answer.get("base_resp") if isinstance(answer, dict) else None
        if not isinstance(base, dict) or "status_code" not in base:
            raise resp.unexpected("base_resp", "is missing")
        code = int(base["status_code"])
        if code == 0 and resp.status == 200:
            return answer
        trace_id = answer.get("trace_id") or resp.headers.get("Trace-Id")
        raise self.codes.classify(PROVIDER, resp, code, str(base.get("status_msg") or "no message"),
                                  trace_id or resp.request_id)

    def prepare(self, call: Call) -> Call:
        """``GroupId`` only when the connection sets one (current accounts reject it with 1004)."""
        if not self._group_id:
            return call
        return dataclasses.replace(call, params={**(call.params or {}), "GroupId": self._group_id})

    # -- requests ------------------------------------------------------------------------------------
    @staticmethod
    def _create_video(prompt: str, model: str, *, duration: int | None = None, resolution: str | None = None,
                      first_frame_image: str | None = None, prompt_optimizer: bool | None = None) -> Call:
        body = {"model": model, "prompt": prompt, "duration": duration, "resolution": resolution,
                "first_frame_image": first_frame_image or None, "prompt_optimizer": prompt_optimizer}
        return Call("POST", "/v1/video_generation", json={k: v for k, v in body.items() if v is not None})

    @staticmethod
    def _create_speech(text: str, model: str, voice_id: str, *, audio_format: str = "mp3",
                       speed: float | None = None) -> Call:
        voice = {"voice_id": voice_id, **({"speed": speed} if speed is not None else {})}
        body = {"model": model, "text": text, "voice_setting": voice, "audio_setting": {"format": audio_format}}
        return Call("POST", "/v1/t2a_async_v2", json=body)

    @staticmethod
    def _query_task(kind: TaskKind | str, task_id: str) -> Call:
        path = {TaskKind.VIDEO: "/v1/query/video_generation",
                TaskKind.SPEECH: "/v1/query/t2a_async_query_v2"}[TaskKind(kind)]
        return Call("GET", path, params={"task_id": task_id})

    @staticmethod
    def _retrieve_file(file_id: int | str) -> Call:
        return Call("GET", "/v1/files/retrieve", params={"file_id": normalise_file_id(file_id)})

    @staticmethod
    def _list_files(purpose: str) -> Call:
        return Call("GET", "/v1/files/list", params={"purpose": purpose})

    @staticmethod
    def _delete_file(file_id: int | str, purpose: str) -> Call:
        return Call("POST", "/v1/files/delete", json={"file_id": normalise_file_id(file_id), "purpose": purpose})

    # -- endpoints: sync on workers, async twins for triggers ---------------------------------------
    def create_video(self, prompt: str, model: str, **options: Any) -> str:
        """``POST /v1/video_generation`` → task id. Never resent when its answer is lost (a second video)."""
        return _task_id(self.send(self._create_video(prompt, model, **options)))

    async def acreate_video(self, prompt: str, model: str, **options: Any) -> str:
        return _task_id(await self.asend(self._create_video(prompt, model, **options)))

    def create_speech(self, text: str, model: str, voice_id: str, **options: Any) -> str:
        """``POST /v1/t2a_async_v2`` → task id. Never resent when its answer is lost."""
        return _task_id(self.send(self._create_speech(text, model, voice_id, **options)))

    async def acreate_speech(self, text: str, model: str, voice_id: str, **options: Any) -> str:
        return _task_id(await self.asend(self._create_speech(text, model, voice_id, **options)))

    def create_speech_metered(self, text: str, model: str, voice_id: str, **options: Any) -> tuple[str, int | None]:
        """``create_speech``, plus the create answer's ``usage_characters`` (what MiniMax counts; None if absent)."""
        answer = self._send(self._create_speech(text, model, voice_id, **options))
        characters = answer.get("usage_characters")
        return _task_id(answer), characters if isinstance(characters, int) and not isinstance(characters, bool) \
            else None

    def query_task(self, kind: TaskKind | str, task_id: str) -> dict[str, Any]:
        """The raw query answer of a video or speech task (judge it with ``status.judge_task``)."""
        return self.send(self._query_task(kind, task_id))

    async def aquery_task(self, kind: TaskKind | str, task_id: str) -> dict[str, Any]:
        return await self.asend(self._query_task(kind, task_id))

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
        return MiniMaxFile.from_api(self.send(self._retrieve_file(file_id)).get("file"))

    async def aretrieve_file(self, file_id: int | str) -> MiniMaxFile:
        return MiniMaxFile.from_api((await self.asend(self._retrieve_file(file_id))).get("file"))

    def list_files(self, purpose: str) -> list[MiniMaxFile]:
        """``GET /v1/files/list?purpose=``."""
        return _file_list(self.send(self._list_files(purpose)))

    async def alist_files(self, purpose: str) -> list[MiniMaxFile]:
        return _file_list(await self.asend(self._list_files(purpose)))

    def delete_file(self, file_id: int | str, purpose: str) -> None:
        """``POST /v1/files/delete``."""
        self.send(self._delete_file(file_id, purpose))

    async def adelete_file(self, file_id: int | str, purpose: str) -> None:
        await self.asend(self._delete_file(file_id, purpose))

    # -- the connection form's Test button -----------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """One ``files/list`` call (read-only, free): MiniMax answers a bad key with 1004 or 2049."""
        try:
            files = self.list_files(OUTPUT_PURPOSES[0])
        except ProviderError as exc:
            return False, str(exc)
        return True, f"MiniMax accepted the API key (status_code 0, {len(files)} {OUTPUT_PURPOSES[0]} files listed)"
