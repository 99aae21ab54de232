"""Base hook: one ``ApiClient`` built from the Airflow connection, shared by sync and async methods.

Subclasses decide which connection fields become which headers (``build_client``); nothing else from the
connection's extra is sent, unlike HttpHook, which turns every unknown extra into a header. Every client gets
the connection's shared pace (extra field ``rate_limit_rps``, ``core.pace``) and its connection pool key.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

from airflow.sdk import BaseHook

from artifact_harvest.core.errors import FatalProviderError
from artifact_harvest.core.http import ApiClient, RetryRule
from artifact_harvest.core.pace import FIELD as RATE_FIELD
from artifact_harvest.core.pace import pace_for


class ProviderHook(BaseHook):
    provider: ClassVar[str] = ""
    default_host: ClassVar[str] = ""
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
        self._client: ApiClient | None = None

    def build_client(self, conn: Any, extra: dict[str, Any]) -> ApiClient:
        """Headers, signing and envelope parsing for this provider."""
        raise NotImplementedError

    # the connection is read once per hook instance, through the sync or the async API
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
    """For operators and sensors: the provider hook for their ``conn_id``, built once per task.

    Every call of a task (each poke, each fresh download URL, the TLS setting) reuses one hook, so the
    connection is read once and one HTTP session is kept.
    """

    hook_class: ClassVar[type[ProviderHook]]
    conn_id: str

    @cached_property
    def hook(self) -> Any:
        return self.hook_class(self.conn_id)
