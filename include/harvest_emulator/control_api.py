"""The JSON control API under ``/_emulator``: how a test steers the emulator without restarting it."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import web

from .serving import base_url
from .state import STATE, EmulatorState

PREFIX = "/_emulator"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"invalid JSON: {exc}") from exc


async def health(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return _json({"status": "reset"})


async def get_config(request: web.Request) -> web.Response:
    return _json(request.app[STATE].config)


async def put_config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.config.update(await _body(request))
    return _json(state.config)


async def add_faults(request: web.Request) -> web.Response:
    body = await _body(request)
    faults = body if isinstance(body, list) else [body]
    try:
        ids = [request.app[STATE].faults.add(fault) for fault in faults]
    except (ValueError, TypeError, re.error) as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    return _json({"ids": ids}, status=201)


async def list_faults(request: web.Request) -> web.Response:
    plan = request.app[STATE].faults
    return _json({"faults": plan.list(), "applied": plan.applied})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE].faults.clear()
    return _json({"status": "cleared"})


async def push_scenario(request: web.Request) -> web.Response:
    state = request.app[STATE]
    provider = request.match_info["provider"]
    scenario = await _body(request)
    if not isinstance(scenario, dict):
        raise web.HTTPBadRequest(text="a scenario is a JSON object")
    state.scenarios[provider].append(scenario)
    return _json({"queued": len(state.scenarios[provider])}, status=201)


async def list_requests(request: web.Request) -> web.Response:
    pattern = request.query.get("path")
    log = request.app[STATE].requests
    return _json([entry for entry in log if not pattern or re.search(pattern, entry["path"])])


async def clear_requests(request: web.Request) -> web.Response:
    request.app[STATE].requests.clear()
    return _json({"status": "cleared"})


async def get_rates(request: web.Request) -> web.Response:
    """Per-account request counts (per second, per route, refused) and connections: see ``ratelimit``."""
    return _json(request.app[STATE].rates.snapshot())


async def clear_rates(request: web.Request) -> web.Response:
    request.app[STATE].rates.clear()
    return _json({"status": "cleared"})


async def create_blob(request: web.Request) -> web.Response:
    """Digests are computed here, off the event loop, so downloads of a big blob never wait for them."""
    state = request.app[STATE]
    body = await _body(request)
    try:
        blob = state.blobs.create(int(body["size"]), body.get("filename", "artifact.bin"), body.get("seed"))
    except (KeyError, ValueError, TypeError) as exc:
        raise web.HTTPBadRequest(text=f"expected {{size, filename?, seed?}}: {exc}") from exc
    md5 = await asyncio.get_running_loop().run_in_executor(None, lambda: blob.md5)
    return _json({
        "blob_id": blob.blob_id, "size": blob.size, "filename": blob.filename, "seed": blob.seed,
        "md5": md5, "sha256": blob.sha256, "url": state.signed_url(base_url(request), blob.blob_id),
    }, status=201)


async def get_blob(request: web.Request) -> web.Response:
    """What a blob holds now (after any ``rebuild``): digests computed off the event loop."""
    blob = request.app[STATE].blobs.get(request.match_info["blob_id"])
    if blob is None:
        raise web.HTTPNotFound(text="no such blob")
    md5 = await asyncio.get_running_loop().run_in_executor(None, lambda: blob.md5)
    return _json({"blob_id": blob.blob_id, "size": blob.size, "filename": blob.filename, "seed": blob.seed,
                  "etag": blob.etag, "md5": md5, "sha256": blob.sha256})


async def list_jobs(request: web.Request) -> web.Response:
    state = request.app[STATE]
    jobs = state.jobs.get(request.match_info["provider"], {})
    return _json([job.describe(state.config) for job in jobs.values()])


def register(app: web.Application, state: EmulatorState) -> None:
    r = app.router
    r.add_get(f"{PREFIX}/health", health)
    r.add_post(f"{PREFIX}/reset", reset)
    r.add_get(f"{PREFIX}/config", get_config)
    r.add_put(f"{PREFIX}/config", put_config)
    r.add_post(f"{PREFIX}/faults", add_faults)
    r.add_get(f"{PREFIX}/faults", list_faults)
    r.add_delete(f"{PREFIX}/faults", clear_faults)
    r.add_post(f"{PREFIX}/scenarios/{{provider}}", push_scenario)
    r.add_get(f"{PREFIX}/requests", list_requests)
    r.add_delete(f"{PREFIX}/requests", clear_requests)
    r.add_get(f"{PREFIX}/rates", get_rates)
    r.add_delete(f"{PREFIX}/rates", clear_rates)
    r.add_post(f"{PREFIX}/blobs", create_blob)
    r.add_get(f"{PREFIX}/blobs/{{blob_id}}", get_blob)
    r.add_get(f"{PREFIX}/jobs/{{provider}}", list_jobs)
