"""The one HTTP rule every hook shares: what is transient, what may be resent, how secrets stay out of text.

A provider request is a :class:`Call`; ``ApiClient`` sends it synchronously (requests, on workers) or
asynchronously (aiohttp, in triggers) through the same loop: a fresh request id per attempt, a timeout on
every call, the provider's ``parse`` deciding what the answer means, and ``RetryRule`` deciding how long to
wait before the next try.

**What may be sent again** is decided by where the failure happened. A failure while connecting (DNS,
refused, connect timeout, TLS handshake: no request byte was written) or a refusal before any work (HTTP 429,
a provider's own rate-limit code: ``TransientProviderError(refused=True)``) is retried for every call. Any
other transient failure (a broken TLS record or an alert after sending, a read timeout, a connection dropped
after sending, any bare 5xx including 503, a provider's server-error code) leaves the outcome unknown: a
:attr:`Call.resendable` call (reads, Describe, stop) is retried as before; any other call (create, start:
paid work) raises :class:`SubmissionInDoubt` instead, and the caller looks the job up
(``core.idempotency``) rather than paying twice. docs/resend-rule.md has the table and the reasons.

**Pace and pool** (docs/pacing.md): with a ``pace`` (``core.pace``, set by the hook) every attempt first
waits for a slot of the connection's shared bucket; a rate-limit answer slows the bucket, and inside a wait
(``core.pace.wait_deadline``) it is retried when the pace allows, without using up an attempt, until the
wait's deadline. Async resendable calls share one keep-alive session per ``pool_key`` and event loop
(``core.pool``); a create or start still gets a connection of its own, so a pooled connection the server
closed meanwhile can never put paid work in doubt.
Hooks own their headers: nothing from a connection's extra is ever sent unless the hook puts it there.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
import requests
import requests.adapters
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from artifact_harvest.core import pool
from artifact_harvest.core.errors import (
    FatalProviderError,
    MalformedResponseError,
    ProviderError,
    SubmissionInDoubt,
    TransientProviderError,
)
from artifact_harvest.core.pace import Pace, PaceRefusal, current_deadline, is_rate_limited

log = logging.getLogger(__name__)

USER_AGENT = "artifact-harvest/0.1 (+apache-airflow)"


def _conf_float(key: str, default: float) -> float:
    try:
        from airflow.configuration import conf

        return conf.getfloat("artifact_harvest", key, fallback=default)
    except Exception:  # configuration unavailable (plain scripts)
        return default


@dataclass(frozen=True)
class RetryRule:
    """Exponential backoff with jitter; ``Retry-After`` wins when the provider sends one.

    Defaults come from ``[artifact_harvest] retry_attempts / retry_base_delay / retry_max_delay`` so tests
    and deployments can tune them with ``AIRFLOW__ARTIFACT_HARVEST__*`` variables.
    """

    attempts: int = field(default_factory=lambda: int(_conf_float("retry_attempts", 5)))
    base_delay: float = field(default_factory=lambda: _conf_float("retry_base_delay", 1.0))
    max_delay: float = field(default_factory=lambda: _conf_float("retry_max_delay", 60.0))
    jitter: float = 0.5
    #: a provider's own Retry-After is honoured up to this many seconds
    max_retry_after: float = 300.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(attempt - 1, 0))
        return ceiling * (1 - self.jitter * random.random())


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def is_transient_status(status: int) -> bool:
    return status == 429 or status >= 500


#: bare answers that say the request was turned away before any work was done: safe to resend any call.
#: 429 only: a rate limiter refuses before forwarding; a bare 503 may come from a gateway after it forwarded.
REFUSED_STATUSES = frozenset({429})
#: methods HTTP defines as safe or idempotent (RFC 9110 9.2.2): a ``Call`` with one is resendable by default
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True)
class Call:
    """One provider request, and whether it may be sent again when its outcome is unknown.

    ``resendable`` defaults to True for the idempotent HTTP methods and False otherwise; set it for
    POSTs that only read or are harmless twice (Qianfan's Describe, a stop). A create or start keeps
    False: a second copy is a second paid job.
    """

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    resendable: bool | None = None

    def __post_init__(self) -> None:
        if self.resendable is None:
            object.__setattr__(self, "resendable", self.method.upper() in IDEMPOTENT_METHODS)


@dataclass
class _Wire:
    """What one synchronous attempt did on the wire: ``sent`` once a request byte went to a connected socket."""

    sent: bool = False


_WIRE: ContextVar[_Wire | None] = ContextVar("artifact_harvest_http_wire", default=None)


@contextmanager
def _watch_wire() -> Iterator[_Wire]:
    """Record, for the requests made inside, whether any request byte was written (see ``_SendRecorder``)."""
    wire = _Wire()
    token = _WIRE.set(wire)
    try:
        yield wire
    finally:
        _WIRE.reset(token)


class _SendRecorder:
    """urllib3 connection mixin: connect (and finish the TLS handshake) first, then note the request is on its way.

    Every request byte urllib3 writes goes through ``send``; a failure before the note (in ``connect``) proves
    the request never left, whatever exception class requests makes of it.
    """

    sock: Any

    def send(self, data: Any) -> None:
        if self.sock is None:
            self.connect()  # type: ignore[attr-defined]  # what http.client does first, made explicit
        wire = _WIRE.get()
        if wire is not None:
            wire.sent = True
        super().send(data)  # type: ignore[misc]


class _HTTPConnection(_SendRecorder, HTTPConnection):
    pass


class _HTTPSConnection(_SendRecorder, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class PhaseAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter whose connections record whether the request was written (for ``never_reached``)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def never_reached(exc: BaseException, *, sent: bool | None = None) -> bool:
    """True when a transport failure happened while connecting, so the request provably never left.

    requests (``sent`` from ``PhaseAdapter``): a ``ConnectionError`` (``SSLError`` included) or ``Timeout``
    raised before any request byte was written. requests raises ``SSLError`` for a failed handshake and for
    a broken record while reading the answer alike, so the exception class alone cannot tell; without
    ``sent`` only ``ConnectTimeout`` counts. aiohttp: ``ClientConnectorError`` (refused, DNS, TLS handshake,
    certificate) and ``ConnectionTimeoutError``, both raised only while connecting; ``ClientOSError`` (a broken
    TLS record) and ``ServerDisconnectedError`` come after sending. Everything else leaves the outcome unknown.
    """
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return True
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if sent is False and isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return True
    return False


# a query string with at least one key=value, wherever it appears (full URLs, or bare paths in urllib3 errors)
_QUERY = re.compile(r"\?[^\s#'\"<>()?]*=[^\s#'\"<>()]*")


def redact_url(url: str) -> str:
    """The URL without its query string: signed URLs carry their credentials there."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "***" if parts.query else "", ""))


class Redactor:
    """Removes known secrets and every URL query string from text bound for logs or exceptions.

    Airflow's masker covers task logs; this covers what the masker does not see: exception text that ends
    up in XCom, events or ``dags test`` output.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        for secret in self._secrets:
            mask(secret)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)
            mask(secret)

    def __call__(self, text: str) -> str:
        text = _QUERY.sub("?***", text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def mask(secret: str | None) -> None:
    """Register a runtime secret with Airflow's log masker (no-op outside Airflow)."""
    if not secret:
        return
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(secret)
    except Exception:  # pragma: no cover - masker unavailable in plain scripts
        pass


@dataclass(frozen=True)
class ApiResponse:
    """What came back for one attempt; handed to the provider's ``parse``."""

    provider: str
    method: str
    path: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    request_id: str

    def json(self) -> Any:
        """The decoded body. Not JSON (a proxy's HTML page): the HTTP status decides, else malformed."""
        import json

        try:
            return json.loads(self.body)
        except ValueError:
            snippet = self.body[:200].decode("utf-8", "replace")
            raise self.unexpected("body", f"is not JSON: {snippet!r}") from None

    def unexpected(self, field: str, detail: str) -> ProviderError:
        """The error for an answer without the provider's envelope: HTTP semantics when the status is an
        error, else a malformed answer (which Airflow's task retries handle, like any unknown failure)."""
        if self.status >= 300:
            return self.http_error(f"{self.method} {self.path} answered HTTP {self.status}; {field} {detail}")
        return MalformedResponseError(self.provider, field, f"{detail} ({self.method} {self.path})",
                                      request_id=self.request_id, http_status=self.status)

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))

    def http_error(self, message: str | None = None, *, code: Any = None, hint: str | None = None) -> ProviderError:
        """The error class HTTP semantics alone imply (for answers with no usable provider envelope)."""
        text = message or f"{self.method} {self.path} answered HTTP {self.status}"
        kwargs = dict(code=code, request_id=self.request_id, http_status=self.status, hint=hint)
        if is_transient_status(self.status):
            return TransientProviderError(self.provider, text, retry_after=self.retry_after,
                                          refused=self.status in REFUSED_STATUSES, **kwargs)
        if self.status in (400, 401, 403, 404, 422):
            return FatalProviderError(self.provider, text, **kwargs)
        return ProviderError(self.provider, text, **kwargs)


Parse = Callable[[ApiResponse], Any]
Sign = Callable[[str, str, dict[str, str], dict[str, str]], dict[str, str]]
"""``sign(method, path, query, headers) -> extra headers`` called for every attempt (e.g. bce-auth-v1)."""


class ApiClient:
    """JSON calls with the shared retry rule, sync (requests) and async (aiohttp)."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        parse: Parse,
        headers: Mapping[str, str] | None = None,
        sign: Sign | None = None,
        request_id_header: str | None = "X-Request-Id",
        timeout: tuple[float, float] = (10.0, 60.0),
        retry: RetryRule | None = None,
        verify: bool = True,
        redactor: Redactor | None = None,
        pace: Pace | None = None,
        pool_key: str | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise FatalProviderError(provider, f"base URL must be http(s), got {base_url!r}")
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.parse = parse
        self.headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        self.sign = sign
        self.request_id_header = request_id_header
        self.timeout = timeout
        self.retry = retry or RetryRule()
        self.verify = verify
        self.redact = redactor or Redactor()
        #: the connection's shared bucket (``core.pace``); None: unpaced
        self.pace = pace
        #: which shared aiohttp session async resendable calls use (``core.pool``)
        self.pool_key = pool_key or f"{provider}:{self.base_url}"
        self._session: requests.Session | None = None

    # -- one attempt -------------------------------------------------------------------------------
    def _prepare(
        self, method: str, path: str, params: Mapping[str, Any] | None, json_body: Any, headers: Mapping[str, str] | None
    ) -> tuple[str, dict[str, str], bytes | None, str]:
        import json

        request_id = str(uuid.uuid4())
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        all_headers = dict(self.headers)
        if headers:
            all_headers.update(headers)
        if self.request_id_header:
            all_headers[self.request_id_header] = request_id
        body = None
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
            all_headers["Content-Type"] = "application/json"
        if self.sign:
            all_headers.update(self.sign(method, path, query, all_headers))
        url = self.base_url + path
        if query:
            url += "?" + urlencode(query)
        return url, all_headers, body, request_id

    def _transport_error(
        self, call: Call, exc: BaseException, request_id: str, sent: bool | None = None
    ) -> TransientProviderError:
        detail = self.redact(f"{type(exc).__name__}: {exc}")
        return TransientProviderError(self.provider, f"{call.method} {call.path} failed: {detail}",
                                      request_id=request_id, refused=never_reached(exc, sent=sent))

    def _next_delay(self, call: Call, attempt: int, error: TransientProviderError) -> float:
        """The one retry rule: seconds to wait before resending, or raise what the caller must see."""
        if not (call.resendable or error.refused):
            raise SubmissionInDoubt(
                self.provider,
                f"{call.method} {call.path}: the provider may have accepted this request, but its outcome is unknown "
                f"({error.provider_message}); it is not sent again",
                code=error.code, request_id=error.request_id, http_status=error.http_status,
            ) from error
        if attempt == self.retry.attempts:
            raise error
        delay = self.retry.delay(attempt, error.retry_after)
        log.warning(
            "%s %s attempt %d/%d failed: %s; retrying in %.1fs",
            call.method, call.path, attempt, self.retry.attempts, self.redact(str(error)), delay,
        )
        return delay

    # -- pace --------------------------------------------------------------------------------------
    def _past_deadline(self, wait: float) -> float | None:
        """Seconds left to the wait's deadline when the pace's slot (``wait`` from now) falls after it."""
        deadline = current_deadline()
        if deadline is None or time.time() + wait <= deadline:
            return None
        return max(deadline - time.time(), 0.0)

    def _no_slot(self, call: Call) -> PaceRefusal:
        return PaceRefusal(self.provider, f"{call.method} {call.path}: the connection's pace allows no request "
                                          "before the wait's deadline")

    def _retry_refusal(self, error: TransientProviderError) -> float | None:
        """For a rate-limit answer inside a wait: seconds to sleep before trying again without using up an
        attempt (0 when a pace spaces the tries), or None when the retry rule decides as for any error."""
        deadline = current_deadline()
        if deadline is None or not is_rate_limited(error):
            return None
        if time.time() >= deadline:
            raise error
        if self.pace is not None:
            return 0.0
        return min(self.retry.delay(1, error.retry_after), max(deadline - time.time(), 0.0))

    def _take_slot(self, call: Call) -> None:
        if self.pace is None:
            return
        wait = self.pace.reserve()
        left = self._past_deadline(wait)
        if left is not None:
            time.sleep(left)
            raise self._no_slot(call)
        if wait > 0:
            time.sleep(wait)

    async def _atake_slot(self, call: Call) -> None:
        if self.pace is None:
            return
        wait = await self.pace.areserve()
        left = self._past_deadline(wait)
        if left is not None:
            await asyncio.sleep(left)
            raise self._no_slot(call)
        if wait > 0:
            await asyncio.sleep(wait)

    # -- sync --------------------------------------------------------------------------------------
    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False
            for prefix in ("http://", "https://"):
                self._session.mount(prefix, PhaseAdapter())
        return self._session

    def send(self, call: Call, *, headers: Mapping[str, str] | None = None) -> Any:
        """Send one logical call; resend what the retry rule allows; return what ``parse`` returns."""
        attempt = 0
        while True:
            self._take_slot(call)
            url, all_headers, body, request_id = self._prepare(call.method, call.path, call.params, call.json, headers)
            try:
                with _watch_wire() as wire:
                    resp = self.session.request(
                        call.method, url, data=body, headers=all_headers, timeout=self.timeout, verify=self.verify,
                        allow_redirects=False,
                    )
                answer = ApiResponse(
                    self.provider, call.method, call.path, resp.status_code, resp.headers, resp.content, request_id
                )
                result = self.parse(answer)
            except requests.RequestException as exc:
                error = self._transport_error(call, exc, request_id, sent=wire.sent)
            except TransientProviderError as exc:
                error = exc
            else:
                if self.pace is not None:
                    self.pace.ok()
                return result
            if self.pace is not None and is_rate_limited(error):
                self.pace.refused(error.retry_after)
            pause = self._retry_refusal(error)
            if pause is None:
                attempt += 1
                pause = self._next_delay(call, attempt, error)
            time.sleep(pause)

    def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
             headers: Mapping[str, str] | None = None, resendable: bool | None = None) -> Any:
        """:meth:`send` for a call described inline."""
        return self.send(Call(method, path, params, json, resendable), headers=headers)

    # -- async -------------------------------------------------------------------------------------
    async def asend(self, call: Call, *, headers: Mapping[str, str] | None = None) -> Any:
        """Async twin of :meth:`send`, for triggers: never blocks the event loop."""
        connect, read = self.timeout
        timeout = aiohttp.ClientTimeout(total=connect + read, connect=connect, sock_read=read)
        if call.resendable:
            async with pool.session(self.pool_key) as shared:
                return await self._asend(shared, call, headers, timeout)
        async with aiohttp.ClientSession(trust_env=False) as own:
            return await self._asend(own, call, headers, timeout)

    async def _asend(self, session: aiohttp.ClientSession, call: Call, headers: Mapping[str, str] | None,
                     timeout: aiohttp.ClientTimeout) -> Any:
        attempt = 0
        while True:
            await self._atake_slot(call)
            url, all_headers, body, request_id = self._prepare(call.method, call.path, call.params, call.json, headers)
            try:
                async with session.request(
                    call.method, url, data=body, headers=all_headers, ssl=None if self.verify else False,
                    allow_redirects=False, timeout=timeout,
                ) as resp:
                    content = await resp.read()
                    answer = ApiResponse(
                        self.provider, call.method, call.path, resp.status, resp.headers, content, request_id
                    )
                result = self.parse(answer)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                error = self._transport_error(call, exc, request_id)
            except TransientProviderError as exc:
                error = exc
            else:
                if self.pace is not None:
                    await self.pace.aok()
                return result
            if self.pace is not None and is_rate_limited(error):
                await self.pace.arefused(error.retry_after)
            pause = self._retry_refusal(error)
            if pause is None:
                attempt += 1
                pause = self._next_delay(call, attempt, error)
            await asyncio.sleep(pause)

    async def acall(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                    headers: Mapping[str, str] | None = None, resendable: bool | None = None) -> Any:
        """:meth:`asend` for a call described inline."""
        return await self.asend(Call(method, path, params, json, resendable), headers=headers)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
