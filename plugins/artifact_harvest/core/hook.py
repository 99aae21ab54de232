"""The one hook shape every provider follows, and the one place a provider's error codes are judged.

A provider hook declares its connection (``build_client``: which connection fields become which headers;
nothing else from the extra is sent, unlike HttpHook), its error codes (``codes``), how to read its envelope
(``parse``) and, if it needs one, a per-call change (``prepare``). Each endpoint is a :class:`Call` builder
and a one-line pair around :meth:`ProviderHook.send` / :meth:`ProviderHook.asend`. Every client gets the
connection's shared pace (extra field ``rate_limit_rps``, ``core.pace``) and its connection pool key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any, ClassVar

from airflow.sdk import BaseHook

from artifact_harvest.core.errors import FatalProviderError, ProviderError, QuotaExhausted, TransientProviderError
from artifact_harvest.core.http import ApiClient, ApiResponse, Call
from artifact_harvest.core.pace import FIELD as RATE_FIELD
from artifact_harvest.core.pace import pace_for
from artifact_harvest.core.redact import Redactor
from artifact_harvest.core.retry import REFUSED_STATUSES, RetryRule, is_transient_status
from artifact_harvest.core.retry_policy import PROVIDER_RETRY_POLICY


@dataclasses.dataclass(frozen=True)
class ProviderCodes:
    """A provider's own error codes, by what another attempt can do; :meth:`classify` judges an answer with them.

    :param refused: rate limits: the provider did no work, so any call may be sent again.
    :param transient: server-side failures: worth another attempt (a create only when the HTTP status is 429).
    :param fatal: code -> what to fix: retrying cannot help.
    :param quota: code -> what to do: no balance or quota left (:class:`QuotaExhausted`: the retry policy fails
        the task without its retries).
    :param meanings: code -> what it means, put before the provider's message unless the message says it.
    :param status_with_code: whether an error with a provider code names the answer's HTTP status too (False
        where errors come in HTTP 200 answers, so the status says nothing; a status that decides still shows).
    """

    refused: frozenset[Any] = frozenset()
    transient: frozenset[Any] = frozenset()
    fatal: Mapping[Any, str] = dataclasses.field(default_factory=dict)
    quota: Mapping[Any, str] = dataclasses.field(default_factory=dict)
    meanings: Mapping[Any, str] = dataclasses.field(default_factory=dict)
    status_with_code: bool = True

    def explain(self, code: Any, message: str) -> str:
        meaning = self.meanings.get(code)
        return message if not meaning or meaning.lower() in message.lower() else f"{meaning}: {message}"

    def classify(self, provider: str, resp: ApiResponse, code: Any, message: str, request_id: str) -> ProviderError:
        """The error to raise for an error answer carrying ``code``: the code's class when it is listed (a
        fatal code only when the HTTP status is not itself transient), else what the HTTP status implies
        (``ApiResponse.http_error``); an unlisted code in a 2xx answer is a plain :class:`ProviderError`."""
        text = self.explain(code, message)
        common: dict[str, Any] = dict(code=code, request_id=request_id,
                                      http_status=resp.status if self.status_with_code else None)
        if code in self.refused:
            return TransientProviderError(provider, text, refused=True, retry_after=resp.retry_after, **common)
        if code in self.transient:
            return TransientProviderError(provider, text, refused=resp.status in REFUSED_STATUSES,
                                          retry_after=resp.retry_after, **common)
        if code in self.fatal and not is_transient_status(resp.status):
            return FatalProviderError(provider, text, hint=self.fatal[code], **common)
        if code in self.quota and not is_transient_status(resp.status):
            return QuotaExhausted(provider, text, hint=self.quota[code], **common)
        if resp.status >= 300:
            answered = dataclasses.replace(resp, request_id=request_id)
            return answered.http_error(text, code=code, hint=self.fatal.get(code) or self.quota.get(code))
        return ProviderError(provider, text, **common)


class ProviderHook(BaseHook):
    """One provider's API: ``build_client``, ``codes`` and ``parse`` per provider; ``send``/``asend`` for all.

    The connection is read once per hook instance, through the sync or the async API.
    """

    provider: ClassVar[str] = ""
    default_host: ClassVar[str] = ""
    codes: ClassVar[ProviderCodes] = ProviderCodes()
    conn_name_attr = "conn_id"

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        retry: RetryRule | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
    ) -> None:
        super().__init__()
        self.conn_id = conn_id or self.default_conn_name
        self.retry = retry
        self.timeout = timeout
        #: the connection's secrets, kept out of error text (filled by :meth:`new_client`)
        self.redact = Redactor()
        self._client: ApiClient | None = None

    # -- what each provider defines ----------------------------------------------------------------
    def build_client(self, conn: Any, extra: dict[str, Any]) -> ApiClient:
        """The client for this connection: base URL, headers, signing (usually through :meth:`new_client`)."""
        raise NotImplementedError

    def parse(self, resp: ApiResponse) -> Any:
        """The useful part of a success; on an error, take code, message and request id from the envelope
        and raise ``self.codes.classify(...)`` (or ``resp.unexpected(...)`` for an answer without one)."""
        raise NotImplementedError

    def prepare(self, call: Call) -> Call:
        """The call as this connection sends it (a query parameter, a path prefix); unchanged by default."""
        return call

    # -- the one send path -------------------------------------------------------------------------
    def send(self, call: Call) -> Any:
        """Send ``call`` (prepared) through the shared retry rule; return what :meth:`parse` returns."""
        client = self.client  # first: building the client may read what prepare needs
        return client.send(self.prepare(call))

    async def asend(self, call: Call) -> Any:
        """:meth:`send` for triggers: never blocks the event loop."""
        client = await self.aclient()
        return await client.asend(self.prepare(call))

    # -- the client --------------------------------------------------------------------------------
    def new_client(self, extra: dict[str, Any], *, base_url: str, secrets: Iterable[str | None] = (),
                   **options: Any) -> ApiClient:
        """An ``ApiClient`` with what every provider shares (this hook's ``parse``, timeout and retry rule, the
        connection's TLS setting, ``secrets`` redacted); ``options`` (headers, sign, ...) add the rest."""
        self.redact = Redactor(secrets)
        return ApiClient(provider=self.provider, base_url=base_url, parse=self.parse, timeout=self.timeout,
                         retry=self.retry, verify=self.verify_tls(extra), redactor=self.redact, **options)

    @property
    def client(self) -> ApiClient:
        if self._client is None:
            conn = self.get_connection(self.conn_id)
            extra = conn.extra_dejson
            self._client = self._paced(self.build_client(conn, extra), extra)
        return self._client

    async def aclient(self) -> ApiClient:
        if self._client is None:
            conn = await self.aget_connection(self.conn_id)
            extra = await conn.aextra_dejson()
            self._client = self._paced(self.build_client(conn, extra), extra)
        return self._client

    def _paced(self, client: ApiClient, extra: dict[str, Any]) -> ApiClient:
        """The connection's shared pace and pool key on the client the provider built."""
        client.pace = pace_for(self.provider, self.conn_id, extra.get(RATE_FIELD))
        client.pool_key = f"{self.provider}:{self.conn_id}"
        return client

    def get_conn(self) -> ApiClient:
        return self.client

    def base_url(self, conn: Any) -> str:
        """The connection's host as a base URL (the host field may hold a full URL, as the UI suggests)."""
        host = (conn.host or self.default_host).rstrip("/")
        if "://" not in host:
            scheme = conn.schema or "https"
            host = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        elif conn.port and host.count(":") == 1:
            host = f"{host}:{conn.port}"
        return host

    def require_secret(self, conn: Any, value: str | None, field: str) -> str:
        if not value:
            raise FatalProviderError(
                self.provider, f"connection {self.conn_id!r} has no {field}", hint=f"set the {field} in the connection"
            )
        return value

    @staticmethod
    def verify_tls(extra: dict[str, Any]) -> bool:
        value = extra.get("verify_ssl", True)
        if isinstance(value, str):
            return value.strip().lower() not in ("false", "0", "no", "off")
        return bool(value)


class HookPerTask:
    """For operators, sensors and triggers: the provider hook for their ``conn_id``, built once.

    ``hook_args`` names further attributes handed to the hook (FlightHub 2's ``api_version``). Every call of
    a task (each poke, each fresh download URL, the TLS setting) reuses one hook, so the connection is read
    once and one HTTP session is kept. Subclasses take ``conn_id`` in their own ``__init__`` (Airflow checks
    operator arguments against the operator classes' signatures), defaulting to ``hook_class.default_conn_name``.
    """

    hook_class: ClassVar[type[ProviderHook]]
    hook_args: ClassVar[tuple[str, ...]] = ()
    conn_id: str

    @cached_property
    def hook(self) -> Any:
        return self.hook_class(self.conn_id, **{name: getattr(self, name) for name in self.hook_args})

    def _hook_apply_defaults(self, *args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Operators and sensors: ``PROVIDER_RETRY_POLICY`` unless the task or its ``default_args`` name a
        policy, so a task built outside the pipeline DAGs still fails at once on no balance (docs/errors.md).
        Airflow's ``BaseOperator`` calls this while it applies ``default_args``."""
        if "retry_policy" not in kwargs and "retry_policy" not in (kwargs.get("default_args") or {}):
            kwargs["retry_policy"] = PROVIDER_RETRY_POLICY
        return args, kwargs

    def verify_tls(self) -> bool:
        """Whether downloads verify TLS: the connection's extra ``verify_ssl``, as for the API calls."""
        return self.hook.client.verify
