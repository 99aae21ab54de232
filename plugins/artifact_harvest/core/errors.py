"""Typed errors that carry the provider's own code, message and request id.

The class says what Airflow should do with the failure:

- ``TransientProviderError``: worth another attempt (rate limits, 5xx, dropped connections).
- ``FatalProviderError``: retrying cannot help (bad key, no permission, invalid parameters, a terminal
  remote failure); it is an ``AirflowFailException`` so the task fails without using its retries.
- ``QuotaExhausted``: the account is out of money or quota; the shared retry policy
  (``core.retry_policy``) fails the task without its retries and says what to do (docs/errors.md).
- ``SubmissionInDoubt``: a create/start was sent but its answer was lost; it is never resent blindly, the
  next step (or Airflow try) looks the job up first (``core.idempotency``).
- ``ProviderError``: anything else (unknown codes, malformed or non-JSON answers); Airflow's normal task
  retries apply, in every sensor mode alike.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException


class ProviderError(AirflowException):
    """An error answered by (or about) a provider API."""

    retryable = False

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        code: Any = None,
        request_id: str | None = None,
        http_status: int | None = None,
        hint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.provider = provider
        self.code = code
        self.provider_message = message
        self.request_id = request_id
        self.http_status = http_status
        self.hint = hint
        self.retry_after = retry_after
        super().__init__(self._render())

    def _render(self, hint_prefix: str = ". ") -> str:
        where = []
        if self.code is not None:
            where.append(f"code {self.code}")
        if self.http_status is not None:
            where.append(f"HTTP {self.http_status}")
        if self.request_id:
            where.append(f"request id {self.request_id}")
        text = f"[{self.provider}] {self.provider_message}"
        if where:
            text += f" ({', '.join(where)})"
        if self.hint:
            text += f"{hint_prefix}{self.hint}"
        return text


class TransientProviderError(ProviderError):
    """Worth retrying after a delay (honour ``retry_after`` when the provider sent one).

    ``refused``: the provider provably did no work (HTTP 429, its own rate-limit code, or the request never
    left: a failure while connecting), so even a create may be sent again; otherwise only a resendable call is
    (see ``core.http`` and docs/resend-rule.md).
    """

    retryable = True

    def __init__(self, provider: str, message: str, *, refused: bool = False, **kwargs: Any) -> None:
        self.refused = refused
        super().__init__(provider, message, **kwargs)


class SubmissionInDoubt(ProviderError):
    """A non-resendable call (create, start) may or may not have been accepted: its answer was lost."""


class FatalProviderError(ProviderError, AirflowFailException):
    """Retrying cannot help: the task fails at once with what to fix."""


class QuotaExhausted(ProviderError):
    """The account has no balance or quota left: no retry within the task's window can succeed.

    Not an ``AirflowFailException``, so Airflow consults the task's retry policy: ``PROVIDER_RETRY_POLICY``
    (every pipeline DAG's default) fails the task at once with :attr:`reason`; a trigger reports it as not
    retryable. Every operator and sensor of the package takes that policy unless it names another.
    """

    def __init__(self, provider: str, message: str, *, hint: str | None = None, **kwargs: Any) -> None:
        super().__init__(provider, message, hint=hint or "top up the account or wait for the quota to reset",
                         **kwargs)

    @property
    def reason(self) -> str:
        """The failure, and that it fails without retrying: what a person must do instead."""
        return self._render(" fails without retrying: ")


class MalformedResponseError(ProviderError):
    """The provider answered something that does not match its documented shape."""

    def __init__(self, provider: str, field: str, detail: str, **kwargs: Any) -> None:
        self.field = field
        super().__init__(provider, f"malformed response: field {field!r} {detail}", **kwargs)


class InvalidParameterError(FatalProviderError):
    """A parameter given by the user (DAG param, operator argument) is not acceptable."""

    def __init__(self, provider: str, field: str, detail: str) -> None:
        self.field = field
        super().__init__(provider, f"invalid parameter {field!r}: {detail}")



# -- the download layer (core.transfer, core.staging) -------------------------------------------------------
class DownloadError(ProviderError):
    """The download did not complete; Airflow's task retries apply and resume from the partial file."""


class IntegrityError(DownloadError):
    """Size or md5 did not match what the provider announced; the partial data has been deleted."""


class FatalDownloadError(DownloadError, FatalProviderError):
    """Retrying cannot help (404, refused input): the task fails at once."""


class ProviderChecksumError(IntegrityError, FatalDownloadError):
    """One uninterrupted pass from byte 0 gave bytes that disagree with the provider's own size or md5.

    A retry would fetch the same bytes again, so the task fails at once. A mismatch after a resumed download
    stays a plain, retryable ``IntegrityError``: the retry starts clean (docs/download.md).
    """


class InsufficientDiskSpace(DownloadError):
    """The staging filesystem cannot hold the rest of the file; the valid partial data stays for the retry."""


class UnsupportedScheme(FatalDownloadError):
    """Only http(s) URLs are fetched (no file://, ftp://, ...)."""


class KeyLocked(ProviderError):
    """Another run kept the key's lock longer than we were willing to wait; Airflow's retries apply."""
