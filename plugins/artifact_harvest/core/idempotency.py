"""Submit remote work at most once per task instance, across retries.

The remote id is written to the task state store (Airflow 3.3, AIP-103) the moment the provider returns
it; a retried task finds it there and re-attaches instead of starting (and paying for) a second job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from airflow.sdk import Context

log = logging.getLogger(__name__)

T = TypeVar("T")


def submit_once(context: Context, key: str, submit: Callable[[], T]) -> T:
    """Return the value stored under ``key`` for this task instance, or call ``submit`` and store it."""
    from airflow.sdk.execution_time.context import NEVER_EXPIRE

    store = context["task_state_store"]
    existing = store.get(key)
    if existing is not None:
        log.info("re-attaching to %s=%s stored by an earlier try; not submitting again", key, existing)
        return existing  # type: ignore[return-value]
    value = submit()
    store.set(key, value, retention=NEVER_EXPIRE)  # type: ignore[arg-type]
    log.info("submitted; stored %s=%s in the task state store", key, value)
    return value


def remembered(context: Context, key: str, default: Any = None) -> Any:
    """A value an earlier try stored (e.g. part of a multi-step submission)."""
    return context["task_state_store"].get(key, default)


def remember(context: Context, key: str, value: Any) -> None:
    from airflow.sdk.execution_time.context import NEVER_EXPIRE

    context["task_state_store"].set(key, value, retention=NEVER_EXPIRE)
