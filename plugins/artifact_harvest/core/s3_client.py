"""The archive's S3 client (boto3 through an Airflow ``aws`` connection) and its errors as typed errors."""

from __future__ import annotations

from typing import Any

from artifact_harvest.core.errors import FatalProviderError, ProviderError, TransientProviderError

STORE = "s3"
_TRANSIENT_CODES = {"SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable",
                    "OperationAborted", "ConditionalRequestConflict"}
#: codes of a store that does not implement a request's option (a condition, a checksum algorithm)
UNSUPPORTED = {"NotImplemented", "InvalidArgument", "InvalidRequest", "UnsupportedArgument"}


def store_error(exc: Exception, doing: str) -> ProviderError:
    """A botocore error as a typed error with the store's code, message and request id (never a secret)."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, ClientError):
        error, meta = exc.response.get("Error", {}), exc.response.get("ResponseMetadata", {})
        status = meta.get("HTTPStatusCode")
        code = error.get("Code") or str(status)
        kind = TransientProviderError if code in _TRANSIENT_CODES or (status or 0) >= 500 else FatalProviderError
        return kind(STORE, f"{doing}: {code}: {error.get('Message') or 'no message'}", code=code, http_status=status,
                    request_id=meta.get("RequestId"))
    if isinstance(exc, NoCredentialsError):
        return FatalProviderError(STORE, f"{doing}: no credentials", hint="set login/password on the aws connection")
    if isinstance(exc, EndpointConnectionError):
        return TransientProviderError(STORE, f"{doing}: {exc}")
    return TransientProviderError(STORE, f"{doing}: {type(exc).__name__}: {exc}")


def error_code(exc: Exception) -> str:
    """The store's error code of a botocore error ("" for anything else)."""
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def s3_client(conn_id: str | None) -> Any:
    """A boto3 S3 client for the ``aws`` connection ``conn_id`` (``endpoint_url`` in its extra for non-AWS stores)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    if conn_id:
        try:
            BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            raise FatalProviderError(
                STORE, f"connection {conn_id!r} (Variable artifact_archive_conn_id) is not defined",
                hint="create an 'aws' connection with that id (login/password = access key, extra endpoint_url)",
            ) from None
    return S3Hook(aws_conn_id=conn_id).get_conn()
