"""One aiohttp ``ClientSession`` (one keep-alive connection pool) per connection and event loop.

``ApiClient.asend`` takes its session from :func:`session`. Inside :func:`trigger_scope` (``PollingTrigger.run``
holds one for its whole life) the trigger counts as one user of each session it touched until the scope ends;
outside a scope each call is a user for its own duration. The session closes when its last user is gone, so
polls of many triggers on one connection share a handful of TCP connections instead of one per poll.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import aiohttp

#: connections one session keeps open at most (per connection and event loop)
MAX_CONNECTIONS = 32


@dataclass
class _Entry:
    session: aiohttp.ClientSession
    users: int = 0


_ENTRIES: dict[tuple[str, int], _Entry] = {}
_LOCK = threading.Lock()
_SCOPE: ContextVar[dict[str, aiohttp.ClientSession] | None] = ContextVar("artifact_harvest_pool_scope", default=None)


def _new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(trust_env=False, connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS))


def _acquire(key: str, factory: Callable[[], aiohttp.ClientSession]) -> aiohttp.ClientSession:
    where = (key, id(asyncio.get_running_loop()))
    with _LOCK:
        entry = _ENTRIES.get(where)
        if entry is None or entry.session.closed:
            entry = _ENTRIES[where] = _Entry(factory())
        entry.users += 1
        return entry.session


async def _release(key: str, session: aiohttp.ClientSession) -> None:
    where = (key, id(asyncio.get_running_loop()))
    with _LOCK:
        entry = _ENTRIES.get(where)
        if entry is None or entry.session is not session:
            close = True  # replaced meanwhile: this one is ours alone
        else:
            entry.users -= 1
            close = entry.users <= 0
            if close:
                del _ENTRIES[where]
    if close:
        await session.close()


@asynccontextmanager
async def session(key: str, factory: Callable[[], aiohttp.ClientSession] = _new_session
                  ) -> AsyncIterator[aiohttp.ClientSession]:
    """The shared session of ``key`` in this event loop, held for the call or for the enclosing trigger scope."""
    held = _SCOPE.get()
    if held is not None:
        if key not in held:
            held[key] = _acquire(key, factory)
        yield held[key]
        return
    shared = _acquire(key, factory)
    try:
        yield shared
    finally:
        await _release(key, shared)


@asynccontextmanager
async def trigger_scope() -> AsyncIterator[None]:
    """Hold every session used inside until the scope ends (a trigger's ``run``), then release them."""
    held: dict[str, aiohttp.ClientSession] = {}
    token = _SCOPE.set(held)
    try:
        yield
    finally:
        try:
            _SCOPE.reset(token)
        except ValueError:  # finalised from another context
            _SCOPE.set(None)
        for key, shared in held.items():
            await _release(key, shared)


def open_sessions() -> dict[str, int]:
    """``{key: users}`` of the sessions open in this process (tests, diagnostics)."""
    with _LOCK:
        return {key: entry.users for (key, _), entry in _ENTRIES.items()}


def shared_session(key: str) -> aiohttp.ClientSession | None:
    """The open shared session of ``key`` in the running event loop, if any (tests, diagnostics)."""
    with _LOCK:
        entry = _ENTRIES.get((key, id(asyncio.get_running_loop())))
        return entry.session if entry else None
