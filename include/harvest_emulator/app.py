"""Assembles the emulator: middlewares, control API, signed blob route, then the three providers' routes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from . import control_api, flighthub2, minimax, qianfan
from .faults import MIDDLEWARE_KINDS
from .ratelimit import account_of, refusal
from .serving import signed_blob
from .state import STATE, EmulatorState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_control(request: web.Request) -> bool:
    return request.path.startswith(control_api.PREFIX)


#: the request's entry in the request log, so a later middleware can add to it
LOG_ENTRY = web.RequestKey("log_entry", dict)


@web.middleware
async def log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record every provider/blob request (logged up front, so hanging requests show too)."""
    if _is_control(request):
        return await handler(request)
    entry = {
        "method": request.method, "path": request.path, "query": dict(request.query),
        "headers": dict(request.headers), "status": None, "time": time.time(),
    }
    request.app[STATE].requests.append(entry)
    request[LOG_ENTRY] = entry
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        entry["status"] = exc.status
        raise
    entry["status"] = response.status
    return response


@web.middleware
async def apply_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Status, envelope and hang faults before the handler runs; drop_answer after it ran."""
    if _is_control(request):
        return await handler(request)
    fault = request.app[STATE].faults.take(
        request.path, request.method, MIDDLEWARE_KINDS, request.query_string, request.headers
    )
    if fault is None:
        return await handler(request)
    if fault["kind"] == "hang":
        await asyncio.sleep(float(fault.get("seconds", 30)))
        return await handler(request)
    if fault["kind"] == "drop_answer":
        response = await handler(request)  # processed for real: whatever it created stays created
        await asyncio.sleep(float(fault.get("seconds", 0)))
        if request.transport is not None:
            request.transport.abort()  # no status line, no body: the client sees the connection drop
        return response  # the log keeps what it would have answered; writing it goes nowhere
    status = int(fault.get("status", 503 if fault["kind"] == "status" else 200))
    headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else {}
    if "body" in fault:
        return web.Response(status=status, headers=headers, text=json.dumps(fault["body"]),
                            content_type="application/json")
    return web.Response(status=status, headers=headers, text=f"injected fault {fault['id']}")


@web.middleware
async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every credentialed provider request; past the account's configured rate, answer as the provider."""
    if _is_control(request):
        return await handler(request)
    who = account_of(request.headers)
    if who is None:
        return await handler(request)
    state = request.app[STATE]
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if not state.rates.admit(state.config.get("rate_limits") or {}, *who, request.path, str(peer)):
        if LOG_ENTRY in request:  # MiniMax refuses with HTTP 200: the log says so itself
            request[LOG_ENTRY]["refused"] = True
        return refusal(who[0])
    return await handler(request)


PROVIDERS = (flighthub2, minimax, qianfan)


def demo_runs() -> list[tuple[str, dict]]:
    """Every provider's ``(dag_id, conf)`` demo runs: what ``make demo`` and the end-to-end tests trigger."""
    return [run for provider in PROVIDERS for run in provider.DEMO_RUNS]


def build_app(state: EmulatorState | None = None) -> web.Application:
    state = state or EmulatorState()
    app = web.Application(middlewares=[log_requests, apply_faults, rate_limit])
    app[STATE] = state
    control_api.register(app, state)
    app.router.add_get("/blobs/{blob_id}/{filename}", signed_blob)
    for provider in PROVIDERS:
        provider.register(app, state)
    return app
