"""The retry policy every pipeline task shares (Airflow 3.3, AIP-105): what a provider failure does to retries.

- ``QuotaExhausted`` (no balance, no quota): fail now, without the task's retries, saying what to do.
- a refused ``TransientProviderError`` (rate limit): retry after the provider's ``Retry-After``, capped by the
  task's ``max_retry_delay``; without one, after the task's own delay.
- anything else: the task's standard retries (``RetryAction.DEFAULT``). ``FatalProviderError`` never gets
  here: it is an ``AirflowFailException``, which Airflow fails before consulting any policy.

The table of provider codes and what each does: docs/errors.md.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import RetryDecision, RetryPolicy

from artifact_harvest.core.errors import QuotaExhausted, TransientProviderError

__all__ = ["PROVIDER_RETRY_POLICY", "ProviderRetryPolicy"]


class ProviderRetryPolicy(RetryPolicy):
    """Decides from the provider error's class and attributes alone; stateless, so one instance serves all."""

    TYPE = "artifact_harvest.ProviderRetryPolicy"

    def evaluate(
        self,
        exception: BaseException,
        try_number: int,
        max_tries: int,
        context: Any = None,
    ) -> RetryDecision:
        if isinstance(exception, QuotaExhausted):
            return RetryDecision.fail(exception.reason)
        if isinstance(exception, TransientProviderError) and exception.refused:
            delay = _provider_delay(exception.retry_after, context)
            after = (f"after the provider's Retry-After ({delay.total_seconds():g} s)" if delay is not None
                     else "after the task's retry delay")
            return RetryDecision.retry(delay, f"{exception} was refused; retrying {after}")
        return RetryDecision.default()

    def serialize(self) -> dict[str, Any]:
        return {"__type": self.TYPE}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> ProviderRetryPolicy:
        if data.get("__type") != cls.TYPE:
            raise ValueError(f"not a serialized {cls.__name__}: {data!r}")
        return cls()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(self.TYPE)

    def __repr__(self) -> str:  # stable across processes: no memory address in a serialized DAG
        return f"{type(self).__name__}()"


def _provider_delay(retry_after: float | None, context: Any) -> timedelta | None:
    """``Retry-After`` as a delay, no longer than the task's ``max_retry_delay`` (when the context has a task)."""
    if retry_after is None:
        return None
    delay = timedelta(seconds=max(retry_after, 0.0))
    task = context.get("task") if context else None
    cap = getattr(task, "max_retry_delay", None)
    if isinstance(cap, (int, float)):
        cap = timedelta(seconds=cap)
    return min(delay, cap) if isinstance(cap, timedelta) else delay


#: in ``dag_defaults.default_args()``: every pipeline task's policy
PROVIDER_RETRY_POLICY = ProviderRetryPolicy()
