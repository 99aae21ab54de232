"""Shared polls: waits of one process on the same remote answer share one status call per interval.

Every wait joins the keys it reads (``async with shared_polls().joined(key, ...)`` for its whole life; a key
names a connection and a remote id, e.g. ``("minimax", conn_id, "video", task_id)``) and asks for an answer
with ``await shared_polls().get(key, fetch, max_age)``: an answer that came less than ``max_age`` seconds
ago is reused, a fetch in flight is awaited, otherwise the caller fetches for everyone. Errors are
shared the same way, so each wait still counts them and decides on its own; each wait keeps its own deadline
and yields its own single event. A key's entry goes when its last wait leaves. The registry is per event loop
(the triggerer runs every trigger on one loop); ``[artifact_harvest] shared_polls = False`` turns sharing off
(one call per wait per interval, as before). docs/shared-polls.md has the costs and figures.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from artifact_harvest.core.config import boolean, setting
from artifact_harvest.core.polling import PollingTrigger

T = TypeVar("T")
Key = tuple[Hashable, ...]


def sharing_enabled() -> bool:
    """``[artifact_harvest] shared_polls`` (default True)."""
    return setting("shared_polls", True, boolean)


class _LeaderGone(Exception):
    """The wait fetching for the others was cancelled before an answer: another one fetches."""


@dataclass
class _Entry:
    waits: int = 0
    pending: asyncio.Future[Any] | None = None
    #: ``time.monotonic()`` when the last answer (or error) came (None: nothing fetched yet)
    answered: float | None = None
    value: Any = None
    error: BaseException | None = None
    #: waits now awaiting the fetch in flight
    awaiting: int = 0

    def answer(self) -> Any:
        if self.error is not None:
            raise self.error.with_traceback(None)
        return self.value


class SharedPolls:
    """The registry of one event loop: key -> waits joined, the last answer and the fetch in flight."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._entries: dict[Key, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[Key]:
        return list(self._entries)

    def waits(self, key: Key) -> int:
        """How many waits have joined ``key`` now."""
        entry = self._entries.get(key)
        return entry.waits if entry else 0

    def awaiting(self, key: Key) -> int:
        """How many waits are awaiting the call in flight for ``key``."""
        entry = self._entries.get(key)
        return entry.awaiting if entry else 0

    def last(self, key: Key) -> Any:
        """The last successful answer for ``key`` (None if none), without fetching."""
        entry = self._entries.get(key)
        return entry.value if entry and entry.error is None else None

    def answered(self, key: Key) -> float | None:
        """When (``time.monotonic()``) ``key``'s current answer came; None without one."""
        entry = self._entries.get(key)
        return entry.answered if entry else None

    @asynccontextmanager
    async def joined(self, *keys: Key) -> AsyncIterator[None]:
        """Count a wait on ``keys`` while inside; the last wait to leave a key removes its entry."""
        if not self.enabled:
            yield
            return
        entries = []
        for key in keys:
            entry = self._entries.setdefault(key, _Entry())
            entry.waits += 1
            entries.append((key, entry))
        try:
            yield
        finally:
            for key, entry in entries:
                entry.waits -= 1
                if entry.waits <= 0 and self._entries.get(key) is entry:
                    del self._entries[key]

    async def get(self, key: Key, fetch: Callable[[], Awaitable[T]], max_age: float) -> T:
        """The answer for ``key``: reused if it came under ``max_age`` s ago, else fetched once for all.

        The fetch runs in the calling wait's own task (its context, its deadline); if that wait is cancelled
        mid-fetch, a waiting one fetches instead. Without a joined entry (sharing off) this is just ``fetch()``.
        """
        entry = self._entries.get(key)
        if entry is None:
            return await fetch()
        while True:
            if entry.pending is not None:
                entry.awaiting += 1
                try:
                    return await asyncio.shield(entry.pending)
                except _LeaderGone:
                    continue
                finally:
                    entry.awaiting -= 1
            if entry.answered is not None and time.monotonic() - entry.answered < max_age:
                return entry.answer()
            return await self._fetch(entry, fetch)

    @staticmethod
    async def _fetch(entry: _Entry, fetch: Callable[[], Awaitable[T]]) -> T:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry.pending = future
        try:
            value = await fetch()
        except Exception as exc:
            entry.answered, entry.value, entry.error = time.monotonic(), None, exc
            future.set_exception(exc)
            raise
        except BaseException:  # cancelled: nothing learnt, someone else fetches
            future.set_exception(_LeaderGone())
            raise
        else:
            entry.answered, entry.value, entry.error = time.monotonic(), value, None
            future.set_result(value)
            return value
        finally:
            entry.pending = None
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" warning when nobody else waited


_REGISTRIES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedPolls] = weakref.WeakKeyDictionary()


def shared_polls() -> SharedPolls:
    """The running event loop's registry (created on first use, sharing per ``[artifact_harvest] shared_polls``)."""
    loop = asyncio.get_running_loop()
    registry = _REGISTRIES.get(loop)
    if registry is None:
        registry = _REGISTRIES[loop] = SharedPolls(enabled=sharing_enabled())
    return registry


class SharedPollTrigger(PollingTrigger):
    """A :class:`PollingTrigger` whose waits join :meth:`poll_keys` for their whole run.

    Subclasses read through :meth:`shared` (``poll_interval`` is the answer's allowed age); the next poll
    comes one interval after the answer came. Serialization is unchanged: nothing about sharing is
    stored with the trigger.
    """

    def poll_keys(self) -> tuple[Key, ...]:
        raise NotImplementedError

    async def run(self) -> AsyncIterator[Any]:
        async with shared_polls().joined(*self.poll_keys()):
            async for event in super().run():
                yield event

    _answered: float | None = None

    async def shared(self, key: Key, fetch: Callable[[], Awaitable[T]]) -> T:
        polls = shared_polls()
        try:
            return await polls.get(key, fetch, self.poll_interval)
        finally:
            self._answered = polls.answered(key)

    def next_poll_in(self) -> float:
        """One interval after the last answer came, so waits sharing it poll together next time (and find a
        fresh answer, not one up to an interval old); calls for one key stay at least an interval apart."""
        if self._answered is None:
            return self.poll_interval
        return max(0.0, self._answered + self.poll_interval - time.monotonic())
