"""Baidu Qianfan console API: bce-auth-v1 signed ``POST /v2/model?Action=...`` calls, sync and async.

Connection: host = base URL, login = access key (AK), password = secret key (SK), extra field
``sign_expiration_seconds`` (default 300, as the qianfan SDK). Every attempt is signed afresh through
bce-python-sdk's signer (``host``, ``x-bce-date`` and ``content-type``), so a retry never reuses an
expired signature. Errors arrive as HTTP >= 400 with ``{requestId, code, message}``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from baidubce.auth.bce_credentials import BceCredentials
from baidubce.auth.bce_v1_signer import sign

from artifact_harvest.core.errors import MalformedResponseError, ProviderError
from artifact_harvest.core.hook import ProviderCodes, ProviderHook
from artifact_harvest.core.http import ApiClient, ApiResponse, Call
from artifact_harvest.qianfan.status import PROVIDER, ExportRecord

MODEL_PATH = "/v2/model"
SIGNED_HEADERS = ("host", "x-bce-date", "content-type")
DEFAULT_SIGN_EXPIRATION = 300
#: a well-formed model version id no account has: what the connection test describes
CONNECTION_PROBE_ID = "amv-connectiontest"

_POLICIES = "QianfanFullControlAccessPolicy or QianfanModelTuningFullControlAccessPolicy"
#: the codes no retry can fix, with what to check (any other error is judged by its HTTP status)
CODES = ProviderCodes(fatal={
    "SignatureDoesNotMatch": "check that the connection's secret key (password) belongs to its access key (login)",
    "InvalidHTTPAuthHeader": "check that the connection's access key and secret key are a valid AK/SK pair",
    "InvalidAccessKeyId": "the access key (login) is unknown: check the AK/SK pair in the connection",
    "RequestExpired": "the signature's timestamp is outside its lifetime: check this machine's clock for skew "
    "(NTP) and the connection's sign_expiration_seconds",
    "AccessDenied": f"grant the IAM user of this AK the policy {_POLICIES}",
    "PermissionDeniedError": f"grant the IAM user of this AK the policy {_POLICIES}",
}, quota={  # money or quota: no retry helps before the quota is raised or renewed (core.retry_policy)
    "QuotaLimitExceeded": "raise the Qianfan quota or top up the account, then run again",
    "QuotaLimitExpired": "renew the Qianfan quota or top up the account, then run again",
})


def canonical_time(timestamp: int) -> str:
    """``yyyy-mm-ddThh:mm:ssZ`` (UTC), the x-bce-date and auth-string format."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def bce_authorization(
    ak: str,
    sk: str,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    *,
    timestamp: int,
    expiration: int,
    signed_headers: Iterable[str] | None = SIGNED_HEADERS,
) -> str:
    """The ``Authorization`` value, computed by bce-python-sdk (which takes and returns bytes).

    ``signed_headers`` empty or None: the SDK's default set and an empty signedHeaders segment.
    """
    def b(value: str) -> bytes:
        return value.encode("utf-8")

    names = [b(name.lower()) for name in signed_headers or ()]
    return sign(
        BceCredentials(b(ak), b(sk)),
        b(method.upper()),
        b(path),
        {b(k): b(v) for k, v in headers.items()},
        {b(k): b(v) for k, v in query.items()},
        timestamp,
        expiration,
        names or None,
    ).decode("ascii")


@dataclasses.dataclass(frozen=True)
class BceSigner:
    """The ApiClient's ``sign`` hook: fresh ``x-bce-date``, explicit ``Host`` and ``Authorization`` per attempt."""

    ak: str
    sk: str = dataclasses.field(repr=False)
    host: str
    expiration: int = DEFAULT_SIGN_EXPIRATION

    def __call__(self, method: str, path: str, query: dict[str, str], headers: dict[str, str]) -> dict[str, str]:
        now = int(time.time())
        extra = {"Host": self.host, "x-bce-date": canonical_time(now)}
        auth = bce_authorization(
            self.ak, self.sk, method, path, query, {**headers, **extra}, timestamp=now, expiration=self.expiration
        )
        return {**extra, "Authorization": auth}


def _export_id(result: dict[str, Any]) -> str:
    export_id = result.get("exportId")
    if not isinstance(export_id, str) or not export_id:
        raise MalformedResponseError(PROVIDER, "result.exportId", "is missing")
    return export_id


class QianfanHook(ProviderHook):
    """Model export actions of the Qianfan console API (sync for workers, async twins for triggers)."""

    default_conn_name = "qianfan_default"
    conn_type = "qianfan"
    hook_name = "Baidu Qianfan"
    provider: ClassVar[str] = PROVIDER
    default_host: ClassVar[str] = "https://qianfan.baidubce.com"
    codes: ClassVar[ProviderCodes] = CODES

    # -- connection and envelope ---------------------------------------------------------------------
    def build_client(self, conn: Any, extra: dict[str, Any]) -> ApiClient:
        """Every attempt is signed afresh (``sign``): a retry never reuses an expired signature."""
        ak = self.require_secret(conn, conn.login, "access key (login)")
        sk = self.require_secret(conn, conn.password, "secret key (password)")
        base_url = self.base_url(conn)
        expiration = int(extra.get("sign_expiration_seconds") or DEFAULT_SIGN_EXPIRATION)
        return self.new_client(
            extra, base_url=base_url, secrets=[ak, sk], sign=BceSigner(ak, sk, urlsplit(base_url).netloc, expiration),
            request_id_header=None,  # Qianfan documents no request-id header; its requestId comes back in the body
        )

    def parse(self, resp: ApiResponse) -> dict[str, Any]:
        """The ``result`` object of a success; the provider's code, message and requestId on every error."""
        body = resp.json()
        if resp.status >= 300:
            if not isinstance(body, dict) or "code" not in body:
                raise resp.unexpected("code", "is missing from the error answer")
            code = str(body["code"])
            raise self.codes.classify(PROVIDER, resp, code, str(body.get("message") or code),
                                      body.get("requestId") or resp.request_id)
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, dict):
            raise MalformedResponseError(PROVIDER, "result", "is missing or not an object",
                                         request_id=resp.request_id, http_status=resp.status)
        return result

    # -- requests: every action is a POST; only the Describe* ones may be resent when their answer is lost --
    @staticmethod
    def _create(model_id: str) -> Call:
        return Call("POST", MODEL_PATH, {"Action": "CreateModelExportTask"}, {"modelId": model_id})

    @staticmethod
    def _describe(model_id: str) -> Call:
        return Call("POST", MODEL_PATH, {"Action": "DescribeModelExportTask"}, {"modelId": model_id},
                    resendable=True)

    # -- endpoints: sync on workers, async twins for triggers ---------------------------------------
    def create_export(self, model_id: str) -> str:
        """CreateModelExportTask: start packaging a model version; returns the export id (``amve-...``)."""
        return _export_id(self.send(self._create(model_id)))

    async def acreate_export(self, model_id: str) -> str:
        return _export_id(await self.asend(self._create(model_id)))

    def describe_export(self, model_id: str) -> ExportRecord:
        """DescribeModelExportTask: the version's current export (by model version id, not export id)."""
        return ExportRecord.from_result(self.send(self._describe(model_id)))

    async def adescribe_export(self, model_id: str) -> ExportRecord:
        return ExportRecord.from_result(await self.asend(self._describe(model_id)))

    # -- the connection form's Test button -----------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """One signed DescribeModelExportTask for a probe id (read-only): Qianfan checks the signature and
        the key's policy before it looks at the model, so only those answers fail the test."""
        try:
            self.describe_export(CONNECTION_PROBE_ID)
        except ProviderError as exc:
            if exc.http_status is None or exc.code in self.codes.fatal or exc.http_status >= 500:
                return False, str(exc)
            probe = f"the probe id {CONNECTION_PROBE_ID} answered {exc.code}"
            return True, f"Qianfan accepted the AK/SK signature ({probe})"
        return True, "Qianfan accepted the AK/SK signature and the policy (DescribeModelExportTask answered)"
