"""Submit remote (paid) work at most once per task instance, across lost answers, killed workers and retries.

Three records in the task state store (Airflow 3.3, AIP-103) tell a try what an earlier one did:

- ``<key>.in_flight`` is written *before* the create/start is sent, and removed once its outcome is known;
- ``<key>`` holds the remote id, written the moment the provider returns it;
- neither: nothing was sent yet.

A try that finds an id re-attaches to it (unless its job ended in a terminal failure: then it says so and
resubmits only when the operator allows it). A try that finds "in flight" without an id, or whose own
create lost its answer (:class:`SubmissionInDoubt`), looks the job up with the provider's ``find`` before
anything else: found, it attaches; not found, it submits. A provider with no lookup fails the task at once
with what to check, unless the operator was told to ``resubmit_if_in_doubt``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from artifact_harvest.core.errors import MalformedResponseError, ProviderError, SubmissionInDoubt

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ``find()``: the job an earlier, unanswered submission started, or None when the provider has none
Find = Callable[[], Any]
#: ``failed(value)``: why the stored job ended in a terminal failure, or None when it did not
Failed = Callable[[Any], str | None]


def in_flight_key(key: str) -> str:
    return f"{key}.in_flight"


def submit_once(
    context: Context,
    key: str,
    submit: Callable[[], T],
    *,
    find: Find | None = None,
    failed: Failed | None = None,
    resubmit_failed: bool = False,
    resubmit_if_in_doubt: bool = False,
    in_doubt_help: str = "",
) -> T:
    """The remote id stored under ``key`` for this task instance, found again, or submitted now and stored.

    :param find: the provider's lookup for a submission whose answer never arrived; None: no lookup exists.
    :param failed: checks a stored id; a job that ended in a terminal failure is not re-attached.
    :param resubmit_failed: submit a new job when the stored one failed (else the task fails, saying so).
    :param resubmit_if_in_doubt: without ``find``, submit again when an earlier submission is in doubt
        (which may pay twice) instead of failing with ``in_doubt_help``.
    """
    store = context["task_state_store"]
    existing = store.get(key)
    if existing is not None:
        why = failed(existing) if failed else None
        if why is None:
            log.info("re-attaching to %s=%s stored by an earlier try; not submitting again", key, existing)
            return existing  # type: ignore[return-value]
        if not resubmit_failed:
            raise AirflowFailException(
                f"{key}={existing}, stored by an earlier try, ended in a terminal failure: {why}. It is not "
                "re-attached, and no new job is submitted unless the operator allows it (resubmit_failed=True)."
            )
        log.warning("%s=%s ended in a terminal failure (%s); submitting a new job as allowed", key, existing, why)
        store.delete(key)
    elif (marker := store.get(in_flight_key(key))) is not None:
        found = _reconcile(key, marker, find, resubmit_if_in_doubt, in_doubt_help)
        if found is not None:
            return _store(store, key, found)

    _remember(store, in_flight_key(key), {"since": datetime.now(timezone.utc).isoformat()})
    try:
        value = submit()
    except SubmissionInDoubt as exc:
        found = _reconcile(key, store.get(in_flight_key(key)), find, False, in_doubt_help, cause=exc)
        if found is None:
            raise  # Airflow's retry finds the marker and looks again before submitting
        return _store(store, key, found)
    except MalformedResponseError:
        raise  # the provider answered, but not with an id: the job may exist; the marker stays
    except ProviderError:
        store.delete(in_flight_key(key))  # the provider answered with an error: nothing was created
        raise
    return _store(store, key, value)


def _reconcile(
    key: str, marker: Any, find: Find | None, resubmit: bool, help_text: str, cause: BaseException | None = None
) -> Any:
    """The job an unanswered submission started, or None when it is safe to submit (again)."""
    since = (marker or {}).get("since", "an earlier try") if isinstance(marker, dict) else "an earlier try"
    if find is None:
        if resubmit:
            log.warning("a submission for %s sent at %s is in doubt; resubmitting as resubmit_if_in_doubt asks "
                        "(this may start a second, paid job)", key, since)
            return None
        raise AirflowFailException(
            f"a submission for {key} sent at {since} may have been accepted, but its answer never arrived"
            f"{f' ({cause})' if cause else ''}, and this provider offers no way to look it up, so it is not "
            f"sent again. {help_text}"
        ) from cause
    found = find()
    if found is None:
        log.warning("a submission for %s sent at %s is in doubt and the provider has no such job; submitting",
                    key, since)
        return None
    log.info("the submission for %s sent at %s was accepted after all: attaching to %s", key, since, found)
    return found


def _store(store: Any, key: str, value: T) -> T:
    _remember(store, key, value)
    store.delete(in_flight_key(key))
    log.info("stored %s=%s in the task state store", key, value)
    return value


def _remember(store: Any, key: str, value: Any) -> None:
    from airflow.sdk.execution_time.context import NEVER_EXPIRE

    store.set(key, value, retention=NEVER_EXPIRE)


def remembered(context: Context, key: str, default: Any = None) -> Any:
    """A value an earlier try stored (e.g. part of a multi-step submission)."""
    return context["task_state_store"].get(key, default)


def remember(context: Context, key: str, value: Any) -> None:
    _remember(context["task_state_store"], key, value)
