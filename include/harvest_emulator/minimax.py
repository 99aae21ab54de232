"""MiniMax routes: video generation, async speech (t2a_async_v2) and the Files API, as API-FACTS §2 describes.

Every route is served at ``/v1/...`` and under the reseller prefix ``/minimax/v1/...`` (seed 001). Errors
answer HTTP 200 with ``base_resp`` like the real API; ``GroupId`` is accepted and ignored.

Scenarios (``push_scenario("minimax", ...)``, consumed by the next create call):
- ``outcome``: ``"success"`` (default), ``"fail"``, ``"expired"``, ``"never"`` (stays processing),
  ``"unknown_status"`` (an undocumented status before success).
- ``status_spelling``: video failure ``"Fail"`` (documented, default) or ``"Failed"`` (the cli's); speech
  statuses lower-case (default) or ``"Capitalized"`` (``Processing/Success/Failed/Expired``).
- ``error_code``: the create call answers this ``base_resp.status_code`` instead.
- ``size``: bytes of the video, or of the audio member of the speech bundle.

Tasks are jobs of provider ``minimax``; files are jobs of ``minimax_files`` whose last stage ``ready`` means
files/retrieve hands out a signed ``download_url`` (TTL ``url_ttl_seconds`` for video, 9x that for speech,
like 1 h / 9 h, unless ``minimax_speech_url_ttl_seconds`` is set). After start and every reset,
three finished files are seeded (fixed ids, created five minutes ago) for the demo runs.
"""

from __future__ import annotations

import io
import itertools
import json
import random
import tarfile
import time
from typing import Any

from aiohttp import web

from .credentials import MINIMAX_API_KEY
from .jobs import Job
from .serving import base_url
from .state import STATE, EmulatorState

PREFIXES = ("", "/minimax")
TASKS, FILES = "minimax", "minimax_files"
PROMPT_MAX_CHARS, TEXT_MAX_CHARS = 2000, 50_000
_HAILUO_23 = {None: (6, 10), "768P": (6, 10), "1080P": (6,)}
#: the API's model → {resolution (None: not sent): durations} table
VIDEO_COMBINATIONS: dict[str, dict[str | None, tuple[int, ...]]] = {
    "MiniMax-Hailuo-2.3": _HAILUO_23, "MiniMax-Hailuo-2.3-Fast": _HAILUO_23,
    "MiniMax-Hailuo-02": {None: (6, 10), "512P": (6,), "768P": (6, 10), "1080P": (6,)},
    **dict.fromkeys(("T2V-01", "T2V-01-Director", "I2V-01", "I2V-01-Director", "I2V-01-live", "S2V-01"), {None: (6,)}),
}
VIDEO_MODELS = set(VIDEO_COMBINATIONS)
I2V_ONLY = {"MiniMax-Hailuo-2.3-Fast", "I2V-01", "I2V-01-Director", "I2V-01-live"}
MESSAGES = {
    1002: "rate limit exceeded", 1004: "login fail: Please carry the API secret key in the 'Authorization' field "
    "of the request header", 1008: "insufficient balance", 1026: "input new_sensitive", 1027: "output new_sensitive",
    2013: "invalid params", 2049: "invalid api key", 2056: "usage limit exceeded",
}
DEFAULT_VIDEO_SIZE = 64 * 1024
DEFAULT_AUDIO_SIZE = 16 * 1024

SEED_VIDEO_FILE_ID = 316338466210001
SEED_SPEECH_FILE_ID = 316338466210002
SEED_VIDEO_FILE_ID_2 = 316338466210003

DEMO_RUNS: list[tuple[str, dict]] = [
    ("minimax_generate_video", {"prompt": "A lighthouse at dawn, waves rolling in", "model": "MiniMax-Hailuo-02",
                                "duration": 6, "resolution": "768P", "poll_interval": 2, "timeout": "PT10M"}),
    ("minimax_generate_speech", {"text": "Artifact Harvest archived your files.", "model": "speech-2.8-hd",
                                 "voice_id": "English_Graceful_Lady", "format": "mp3", "poll_interval": 2,
                                 "timeout": "PT10M"}),
    ("minimax_archive_file", {"file_id": SEED_VIDEO_FILE_ID}),
    ("minimax_archive_new_files", {}),
]

_ids = itertools.count(random.Random().randrange(10**14, 2 * 10**14))


def envelope(code: int = 0, message: str | None = None, **body: Any) -> web.Response:
    msg = "success" if code == 0 else (message or MESSAGES.get(code, "error"))
    return web.json_response({**body, "base_resp": {"status_code": code, "status_msg": msg}})


def _auth_error(request: web.Request) -> web.Response | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        return envelope(1004)
    if header[7:].strip() != MINIMAX_API_KEY:
        return envelope(1004, "token not match group")
    return None


def _authenticated(handler):
    async def wrapper(request: web.Request) -> web.StreamResponse:
        return _auth_error(request) or await handler(request, request.app[STATE])
    return wrapper


# -- files ---------------------------------------------------------------------------------------------
def _add_file(state: EmulatorState, purpose: str, filename: str, data: bytes | None = None, size: int = 0,
              file_id: int | None = None, task_id: str = "", stages: tuple[str, ...] = ("ready",),
              created_at: float | None = None) -> Job:
    blob = state.blobs.create(size=size, filename=filename, data=data)
    job = Job(job_id=str(file_id or next(_ids)), stages=list(stages), created_at=created_at or time.time(),
              data={"blob_id": blob.blob_id, "purpose": purpose, "task_id": task_id})
    state.jobs[FILES][job.job_id] = job
    return job


def speech_bundle(task_id: str, audio_format: str, size: int) -> bytes:
    """A real tar with the three documented members: audio, sentence subtitles, extra JSON."""
    audio = random.Random(task_id).randbytes(size)
    members = {
        f"{task_id}.{audio_format}": audio,
        f"{task_id}.titles": json.dumps([{"text": "demo", "time_begin": 0, "time_end": 1200}]).encode(),
        f"{task_id}.extra": json.dumps({"audio_length": 1200, "audio_size": size, "audio_format": audio_format,
                                        "usage_characters": 4}).encode(),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(content), 1_700_000_000
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _seed(state: EmulatorState) -> None:
    created = time.time() - 300
    _add_file(state, "video_generation", "output_aigc.mp4", size=DEFAULT_VIDEO_SIZE, file_id=SEED_VIDEO_FILE_ID,
              task_id="seed-video-1", created_at=created)
    _add_file(state, "t2a_async", "seed-speech-1.tar", data=speech_bundle("seed-speech-1", "mp3", 4096),
              file_id=SEED_SPEECH_FILE_ID, task_id="seed-speech-1", created_at=created)
    _add_file(state, "video_generation", "output_aigc.mp4", size=DEFAULT_VIDEO_SIZE // 2,
              file_id=SEED_VIDEO_FILE_ID_2, created_at=created)


def _file_object(state: EmulatorState, job: Job, url: str = "") -> dict[str, Any]:
    blob = state.blobs.get(job.data["blob_id"])
    return {"file_id": int(job.job_id), "bytes": blob.size, "created_at": int(job.created_at),
            "filename": blob.filename, "purpose": job.data["purpose"], "download_url": url}


def _file_id(value: Any) -> str | None:
    text = str(value if value is not None else "").strip()
    return text if text.isdigit() else None


async def retrieve(request: web.Request, state: EmulatorState) -> web.Response:
    job = state.jobs[FILES].get(_file_id(request.query.get("file_id")) or "")
    if job is None:
        return envelope(2013, "invalid params, file_id not found")
    url = ""
    if job.observe(state.config) == "ready":
        ttl = float(state.config["url_ttl_seconds"])
        if job.data["purpose"] == "t2a_async":
            ttl = float(state.config.get("minimax_speech_url_ttl_seconds") or 9 * ttl)
        url = state.signed_url(base_url(request), job.data["blob_id"], ttl)
    return envelope(file=_file_object(state, job, url))


async def list_files(request: web.Request, state: EmulatorState) -> web.Response:
    purpose = request.query.get("purpose")
    if purpose not in ("voice_clone", "prompt_audio", "t2a_async_input", "t2a_async", "video_generation"):
        return envelope(2013, "invalid params, purpose")
    files = [_file_object(state, job) for job in state.jobs[FILES].values() if job.data["purpose"] == purpose]
    for file in files:
        del file["download_url"]
    return envelope(files=files)


async def delete_file(request: web.Request, state: EmulatorState) -> web.Response:
    body = await _json(request)
    file_id = _file_id(body.get("file_id"))
    job = state.jobs[FILES].get(file_id or "")
    if job is None or body.get("purpose") != job.data["purpose"]:
        return envelope(2013, "invalid params, file_id or purpose")
    del state.jobs[FILES][file_id]
    return envelope(file_id=int(file_id))


# -- tasks ---------------------------------------------------------------------------------------------
async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _stages(kind: str, scenario: dict[str, Any]) -> list[str]:
    """The statuses a task reports, poll after poll, in the spelling the scenario asks for."""
    spelling = scenario.get("status_spelling")
    if kind == "video":
        running, failed = ["Preparing", "Queueing", "Processing"], "Failed" if spelling == "Failed" else "Fail"
        word = str
    else:
        running, failed = ["Processing"], "Failed"
        word = str if spelling in ("Capitalized", "Capitalised", "Failed") else str.lower
    outcome = scenario.get("outcome", "success")
    ending = {"success": ["Success"], "fail": [failed], "expired": ["Expired"], "never": [],
              "unknown_status": ["Rendering", "Success"]}[outcome]
    return [word(s) for s in running + ending]


def _create(kind: str, body: dict[str, Any], state: EmulatorState) -> web.Response:
    scenario = state.next_scenario(TASKS)
    if scenario.get("error_code"):
        return envelope(int(scenario["error_code"]), scenario.get("error_message"))
    task_id = str(next(_ids))
    state.add_job(TASKS, Job(job_id=task_id, stages=_stages(kind, scenario), scenario=scenario,
                             data={"kind": kind, "body": body}))
    if kind == "speech":
        return envelope(task_id=int(task_id), task_token="emulated", usage_characters=len(body["text"]))
    return envelope(task_id=task_id)


def _video_problem(body: dict[str, Any]) -> str | None:
    """Why MiniMax would refuse this video request (2013), or None."""
    model, prompt = body.get("model"), str(body.get("prompt") or "")
    if model not in VIDEO_MODELS:
        return f"model {model!r} is not supported"
    if not prompt.strip() and not body.get("first_frame_image"):
        return "prompt is required"
    if len(prompt) > PROMPT_MAX_CHARS:
        return f"prompt exceeds {PROMPT_MAX_CHARS} characters"
    resolution, duration = body.get("resolution"), body.get("duration", 6)
    allowed = VIDEO_COMBINATIONS[model]
    if resolution not in allowed or duration not in allowed[resolution]:
        return f"{model} does not support duration {duration} at resolution {resolution or 'default'}"
    if model in I2V_ONLY and not body.get("first_frame_image"):
        return f"first_frame_image is required for {model}"
    return None


async def create_video(request: web.Request, state: EmulatorState) -> web.Response:
    body = await _json(request)
    if problem := _video_problem(body):
        return envelope(2013, f"invalid params, {problem}")
    return _create("video", body, state)


async def create_speech(request: web.Request, state: EmulatorState) -> web.Response:
    body = await _json(request)
    text = str(body.get("text") or "")
    if not body.get("model") or not text.strip() or not (body.get("voice_setting") or {}).get("voice_id"):
        return envelope(2013, "invalid params, model, text and voice_setting.voice_id are required")
    if len(text) > TEXT_MAX_CHARS:
        return envelope(2013, f"invalid params, text exceeds {TEXT_MAX_CHARS} characters")
    return _create("speech", body, state)


def _finish(state: EmulatorState, job: Job) -> str:
    """The output file of a task that just succeeded (created once)."""
    if "file_id" not in job.data:
        size = int(job.scenario.get("size") or 0)
        if job.data["kind"] == "video":
            file = _add_file(state, "video_generation", "output_aigc.mp4", size=size or DEFAULT_VIDEO_SIZE,
                             task_id=job.job_id, stages=("pending", "ready"))
        else:
            audio_format = (job.data["body"].get("audio_setting") or {}).get("format", "mp3")
            data = speech_bundle(job.job_id, audio_format, size or DEFAULT_AUDIO_SIZE)
            file = _add_file(state, "t2a_async", f"{job.job_id}.tar", data=data, task_id=job.job_id,
                             stages=("pending", "ready"))
        job.data["file_id"] = file.job_id
    return job.data["file_id"]


def _query(kind: str):
    async def handler(request: web.Request, state: EmulatorState) -> web.Response:
        job = state.jobs[TASKS].get(str(request.query.get("task_id", "")).strip())
        if job is None or job.data["kind"] != kind:
            return envelope(2013, "invalid params, task_id not found")
        status = job.observe(state.config)
        file_id = _finish(state, job) if status.lower() == "success" else None
        if kind == "video":
            answer = {"task_id": job.job_id, "status": status, "file_id": file_id or ""}
            if file_id:
                answer |= {"video_width": 1366, "video_height": 768}
            return envelope(**answer)
        return envelope(task_id=int(job.job_id), status=status, **({"file_id": int(file_id)} if file_id else {}))
    return handler


def register(app: web.Application, state: EmulatorState) -> None:
    """The MiniMax routes, at ``/v1/...`` and ``/minimax/v1/...``."""
    state.add_seeder(_seed)
    routes = [
        ("POST", "/v1/video_generation", create_video),
        ("GET", "/v1/query/video_generation", _query("video")),
        ("POST", "/v1/t2a_async_v2", create_speech),
        ("GET", "/v1/query/t2a_async_query_v2", _query("speech")),
        ("GET", "/v1/files/retrieve", retrieve),
        ("GET", "/v1/files/list", list_files),
        ("POST", "/v1/files/delete", delete_file),
    ]
    for prefix in PREFIXES:
        for method, path, handler in routes:
            app.router.add_route(method, prefix + path, _authenticated(handler))
