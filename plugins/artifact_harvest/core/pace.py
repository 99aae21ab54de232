"""The pace of one connection: a token bucket shared by every call of that connection, slowed by refusals.

``pace_for(provider, conn_id, rps)`` returns the process's one :class:`Pace` for a connection; the hooks
hand it to their ``ApiClient``, which takes a slot before every attempt (sync and async alike). The bucket
is a GCRA reservation with a burst of one: each caller reserves the next free slot and waits for it, so
calls are spread evenly at the current rate. The rate starts at the connection's ``rate_limit_rps`` (else
the provider's default), times ``HEADROOM``; a rate-limit answer halves it (at most once a second) and
pushes the next slot past the provider's ``Retry-After``; each success adds back 10 % of the configured
rate per second of traffic (additive increase) up to the configured rate.

With ``[artifact_harvest] rate_limit_url`` (a Redis URL) the bucket lives in Redis (one Lua script, so every
process on every host shares one budget); without it each process paces ``rate * rate_limit_share``.
Inside a wait (:func:`wait_deadline`), a rate-limit refusal never counts as a failure: ``ApiClient`` retries it
when the pace allows, until the wait's deadline. docs/pacing.md has the defaults, sources and costs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from artifact_harvest.core.errors import FatalProviderError, TransientProviderError

log = logging.getLogger(__name__)

#: requests per second per connection when its form leaves ``rate_limit_rps`` empty (docs/pacing.md: sources)
DEFAULT_RPS = {"minimax": 10.0, "flighthub2": 5.0, "qianfan": 5.0}
FIELD = "rate_limit_rps"
#: the pace aims below the limit so that arrival jitter never puts one second past it
HEADROOM = 0.9
#: the slowest the pace goes, as a fraction of its configured rate
FLOOR = 0.02
#: additive increase: rate per second of traffic regained, as a fraction of the configured rate
INCREASE = 0.1
#: a provider's Retry-After delays the shared bucket by at most this many seconds
MAX_RETRY_AFTER = 60.0
#: after a Redis failure, this process paces alone for this many seconds before trying Redis again
REDIS_RETRY = 30.0

_DEADLINE: ContextVar[float | None] = ContextVar("artifact_harvest_wait_deadline", default=None)


class PaceRefusal(TransientProviderError):
    """The pace has no slot before the wait's deadline: nothing was sent (counts as a rate-limit refusal)."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(provider, message, refused=True)


def is_rate_limited(exc: BaseException) -> bool:
    """A refusal for the rate: HTTP 429 or a provider's own rate-limit code (an answer, not a transport failure)."""
    if isinstance(exc, PaceRefusal):
        return True
    return (isinstance(exc, TransientProviderError) and exc.refused
            and (exc.code is not None or exc.http_status is not None))


@contextmanager
def wait_deadline(end_time: float) -> Iterator[None]:
    """Calls made inside belong to a wait ending at ``end_time`` (wall clock): refusals are retried until then."""
    token = _DEADLINE.set(float(end_time))
    try:
        yield
    finally:
        try:
            _DEADLINE.reset(token)
        except ValueError:  # closed from another context (a generator finalised elsewhere)
            _DEADLINE.set(None)


def current_deadline() -> float | None:
    return _DEADLINE.get()


def _step(state: dict[str, float], op: str, limit: float, arg: float, now: float) -> float:
    """One operation on a bucket's state ``{tat, rate, cut}``; the Lua script below is the same code."""
    tat = max(state.get("tat", now), 0.0)
    rate = min(state.get("rate", limit), limit)
    cut = state.get("cut", 0.0)
    result = 0.0
    if op == "reserve":
        slot = max(tat, now)
        tat = slot + 1.0 / rate
        result = slot - now
    elif op == "refused":
        if now - cut >= 1.0:
            rate, cut = max(limit * FLOOR, rate / 2), now
        tat = max(tat, now + min(arg, MAX_RETRY_AFTER), now + 1.0 / rate)
        result = rate
    else:  # ok
        rate = min(limit, rate + limit * INCREASE / rate)
        result = rate
    state.update(tat=tat, rate=rate, cut=cut)
    return result


_LUA = """
local s = redis.call('HMGET', KEYS[1], 'tat', 'rate', 'cut')
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local op, limit, arg = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local floor, increase, max_retry = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local tat = tonumber(s[1]) or now
local rate = math.min(tonumber(s[2]) or limit, limit)
local cut = tonumber(s[3]) or 0
local result = 0
if op == 'reserve' then
  local slot = math.max(tat, now)
  tat = slot + 1 / rate
  result = slot - now
elseif op == 'refused' then
  if now - cut >= 1 then rate = math.max(limit * floor, rate / 2); cut = now end
  tat = math.max(tat, now + math.min(arg, max_retry), now + 1 / rate)
  result = rate
else
  rate = math.min(limit, rate + limit * increase / rate)
  result = rate
end
redis.call('HSET', KEYS[1], 'tat', tostring(tat), 'rate', tostring(rate), 'cut', tostring(cut))
redis.call('EXPIRE', KEYS[1], 3600)
return tostring(result)
"""


class Pace:
    """One connection's bucket: ``reserve`` gives the seconds to wait before sending; ``refused`` / ``ok`` adjust.

    ``limit`` is the rate this process may use (already scaled by headroom and share). With ``redis_url`` the
    state lives in Redis under ``key``; a Redis failure falls back to this process's own bucket for
    ``REDIS_RETRY`` seconds (logged), so an unreachable Redis costs one failed connection, not one per call.
    """

    def __init__(self, key: str, limit: float, redis_url: str | None = None) -> None:
        self.key = key
        self.limit = limit
        self.redis_url = redis_url
        self._state: dict[str, float] = {}
        self._redis_down_until = 0.0
        self._lock = threading.Lock()
        self._sync_redis: Any = None
        self._async_redis: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()

    @property
    def rate(self) -> float:
        """The current rate of this process's bucket (Redis: read with :meth:`shared_rate`)."""
        return min(self._state.get("rate", self.limit), self.limit)

    def _local(self, op: str, arg: float) -> float:
        with self._lock:
            return _step(self._state, op, self.limit, arg, time.time())

    def _args(self, op: str, arg: float) -> list[Any]:
        return [op, self.limit, arg, FLOOR, INCREASE, MAX_RETRY_AFTER]

    def _use_redis(self) -> bool:
        return bool(self.redis_url) and time.monotonic() >= self._redis_down_until

    def _fallback(self, exc: Exception, op: str, arg: float) -> float:
        log.warning("rate limit store unreachable (%s): pacing %s in this process only for %.0f s",
                    type(exc).__name__, self.key, REDIS_RETRY)
        self._redis_down_until = time.monotonic() + REDIS_RETRY
        return self._local(op, arg)

    # -- sync ----------------------------------------------------------------------------------------
    def _run(self, op: str, arg: float = 0.0) -> float:
        if not self._use_redis():
            return self._local(op, arg)
        import redis

        try:
            if self._sync_redis is None:
                client = redis.Redis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=5)
                self._sync_redis = client.register_script(_LUA)
            return float(self._sync_redis(keys=[self.key], args=self._args(op, arg)))
        except redis.RedisError as exc:
            return self._fallback(exc, op, arg)

    def reserve(self) -> float:
        return self._run("reserve")

    def refused(self, retry_after: float | None = None) -> float:
        return self._run("refused", retry_after or 0.0)

    def ok(self) -> float:
        return self._run("ok")

    def shared_rate(self) -> float:
        """The current rate wherever the bucket lives (Redis or this process)."""
        if not self.redis_url:
            return self.rate
        import redis

        value = redis.Redis.from_url(self.redis_url).hget(self.key, "rate")
        return min(float(value), self.limit) if value else self.limit

    # -- async ---------------------------------------------------------------------------------------
    async def _arun(self, op: str, arg: float = 0.0) -> float:
        if not self._use_redis():
            return self._local(op, arg)
        import redis
        import redis.asyncio

        loop = asyncio.get_running_loop()
        try:
            script = self._async_redis.get(loop)
            if script is None:
                client = redis.asyncio.Redis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=5)
                script = self._async_redis[loop] = client.register_script(_LUA)
            return float(await script(keys=[self.key], args=self._args(op, arg)))
        except redis.RedisError as exc:
            return self._fallback(exc, op, arg)

    async def areserve(self) -> float:
        return await self._arun("reserve")

    async def arefused(self, retry_after: float | None = None) -> float:
        return await self._arun("refused", retry_after or 0.0)

    async def aok(self) -> float:
        return await self._arun("ok")


_PACES: dict[str, Pace] = {}
_PACES_LOCK = threading.Lock()


def _conf(key: str, default: str) -> str:
    try:
        from airflow.configuration import conf

        return conf.get("artifact_harvest", key, fallback=default) or default
    except Exception:  # configuration unavailable (plain scripts)
        return default


def configured_rps(provider: str, value: Any) -> float:
    """The connection's ``rate_limit_rps`` as a positive number, or the provider's default when empty."""
    if value in (None, ""):
        return DEFAULT_RPS.get(provider, 5.0)
    try:
        rps = float(value)
    except (TypeError, ValueError):
        rps = 0.0
    if not rps > 0:
        raise FatalProviderError(provider, f"connection field {FIELD!r} must be a number of requests per second "
                                 f"above 0, got {value!r}", hint="clear it to use the provider's default")
    return rps


def pace_for(provider: str, conn_id: str, rps: Any = None) -> Pace:
    """The process's pace for one connection (created on first use; a changed limit applies at once)."""
    redis_url = _conf("rate_limit_url", "").strip() or None
    share = 1.0 if redis_url else float(_conf("rate_limit_share", "1") or 1)
    if not 0 < share <= 1:
        raise FatalProviderError(provider, f"[artifact_harvest] rate_limit_share must be in (0, 1], got {share}")
    limit = configured_rps(provider, rps) * HEADROOM * share
    key = f"artifact_harvest:pace:{provider}:{conn_id}"
    with _PACES_LOCK:
        pace = _PACES.get(key)
        if pace is None or pace.redis_url != redis_url:
            pace = _PACES[key] = Pace(key, limit, redis_url)
        pace.limit = limit
        return pace


def reset_paces() -> None:
    """Forget every bucket of this process (tests; Redis keys expire by themselves after an hour idle)."""
    with _PACES_LOCK:
        _PACES.clear()
