"""The one HTTP rule every hook shares: what is transient, what may be resent, how secrets stay out of text.

A provider request is a :class:`Call`; ``ApiClient`` sends it synchronously (requests, on workers) or
asynchronously (aiohttp, in triggers) through the same loop: a fresh request id per attempt, a timeout on
every call, the provider's ``parse`` deciding what the answer means, and ``RetryRule`` (``core.retry``)
deciding how long to wait before the next try; text in errors and logs goes through a ``Redactor``
(``core.redact``).

**What may be sent again** is decided by where the failure happened (``core.phase``). A failure while connecting
(DNS, refused, connect timeout, TLS handshake: no request byte was written) or a refusal before any work (HTTP
429, a provider's own rate-limit code: ``TransientProviderError(refused=True)``) is retried for every call. Any
other transient failure (a broken TLS record or an alert after sending, a read timeout, a connection dropped
after sending, any bare 5xx including 503, a provider's server-error code) leaves the outcome unknown: a
:attr:`Call.resendable` call (reads, Describe, stop) is retried as before; any other call (create, start: paid
work) raises :class:`SubmissionInDoubt` instead, and the caller looks the job up (``core.idempotency``) rather
than paying twice. docs/resend-rule.md has the table and the reasons.

**Pace and pool** (docs/pacing.md): with a ``pace`` (``core.pace``, set by the hook) every attempt first waits
(``core.pace_gate``) for a slot of the connection's shared bucket; a rate-limit answer slows the bucket, and
inside a wait (``core.pace.wait_deadline``) it is retried when the pace allows, without using up an attempt,
until the wait's deadline. Async resendable calls share one keep-alive session per ``pool_key`` and event loop
(``core.pool``); a create or start still gets a connection of its own, so a pooled connection the server closed
meanwhile can never put paid work in doubt.
Hooks own their headers: nothing from a connection's extra is ever sent unless the hook puts it there.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import requests

from artifact_harvest.core import pool
from artifact_harvest.core.errors import (
    FatalProviderError,
    MalformedResponseError,
    ProviderError,
    SubmissionInDoubt,
    TransientProviderError,
)
from artifact_harvest.core.pace import Pace, is_rate_limited
from artifact_harvest.core.pace_gate import atake_slot, refusal_pause, take_slot
from artifact_harvest.core.phase import never_reached, recording_session, watch_wire
from artifact_harvest.core.redact import Redactor
from artifact_harvest.core.retry import REFUSED_STATUSES, RetryRule, is_transient_status, parse_retry_after

__all__ = ["IDEMPOTENT_METHODS", "USER_AGENT", "ApiClient", "ApiResponse", "Call", "Parse", "Sign"]

log = logging.getLogger(__name__)

USER_AGENT = "artifact-harvest/0.1 (+apache-airflow)"


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

    # -- sync --------------------------------------------------------------------------------------
    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = recording_session()
        return self._session

    def send(self, call: Call, *, headers: Mapping[str, str] | None = None) -> Any:
        """Send one logical call; resend what the retry rule allows; return what ``parse`` returns."""
        attempt = 0
        while True:
            if self.pace is not None:
                take_slot(self.pace, self.provider, f"{call.method} {call.path}")
            url, all_headers, body, request_id = self._prepare(call.method, call.path, call.params, call.json, headers)
            try:
                with watch_wire() as wire:
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
            pause = refusal_pause(error, self.pace, self.retry)
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
            if self.pace is not None:
                await atake_slot(self.pace, self.provider, f"{call.method} {call.path}")
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
            pause = refusal_pause(error, self.pace, self.retry)
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
