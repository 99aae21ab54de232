"""Submit remote (paid) work at most once per task instance, across lost answers, killed workers and retries.

Two records in the task state store (Airflow 3.3, AIP-103) tell a try what an earlier one did:

- ``<key>.in_flight`` is written *before* the create/start is sent, and removed once its outcome is known;
  it holds what was sent and when (``since`` plus the operator's ``sent()`` facts), for the lookup;
- ``<key>`` holds the remote id, logged and then written the moment the provider returns it.

An in-flight record without an answer is *in doubt*: the provider's ``find(record)`` looks the job up.
Found exactly: attach. Not found, ambiguous, or no lookup at all: the task fails at once with what to check,
unless ``resubmit_if_in_doubt`` says to submit again (which may pay twice). Never "not found, so submit".
A stored id whose job ended in a terminal failure is resubmitted only with ``resubmit_failed``.
What Clear, Clear with "keep task state" and ``resubmit_if_in_doubt`` do: docs/exactly-once.md.
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

#: ``find(record)``: the job the in-flight submission ``record`` started, or None when none is visible;
#: raises :class:`Ambiguous` when more than one job could be it
Find = Callable[[dict[str, Any]], Any]
#: ``failed(value)``: why the stored job ended in a terminal failure, or None when it did not
Failed = Callable[[Any], str | None]

#: what each way of running the task again does with an in-doubt submission (said in every in-doubt failure)
CLEAR_HELP = (
    "Running it again: a retry, a DAG-run Clear, or a task Clear with \"keep task state\" keeps the in-flight "
    "record, so the next try looks again (and fails again while it cannot tell); a plain task Clear discards "
    "the task state where the Clear dialog offers \"keep task state\", and then the next try submits without "
    "looking, which may pay twice; resubmit_if_in_doubt=true (trigger form or operator argument) submits again "
    "on purpose, which may also pay twice; a new DAG run submits anew. See docs/exactly-once.md."
)


class Ambiguous(Exception):
    """``find`` saw more than one job that could be the in-doubt submission's: a person must decide."""


def in_flight_key(key: str) -> str:
    return f"{key}.in_flight"


def submit_once(
    context: Context,
    key: str,
    submit: Callable[[], T],
    *,
    find: Find | None = None,
    failed: Failed | None = None,
    sent: Callable[[], dict[str, Any]] | None = None,
    resubmit_failed: bool = False,
    resubmit_if_in_doubt: bool = False,
    in_doubt_help: str = "",
) -> T:
    """The remote id stored under ``key`` for this task instance, found again, or submitted now and stored.

    :param find: the provider's lookup for an in-doubt submission (gets the in-flight record); None: none exists.
    :param failed: checks a stored id; a job that ended in a terminal failure is not re-attached.
    :param sent: facts about the submission about to go out (JSON-able, small), kept in the in-flight record
        for ``find``; called only when a submission is really about to be sent.
    :param resubmit_failed: submit again when the stored job failed (``submit`` may read the stored value
        to resubmit only the failed part); else the task fails, saying so.
    :param resubmit_if_in_doubt: when the lookup cannot tell, submit again (may pay twice) instead of failing.
    :param in_doubt_help: what a person should check at the provider, for the in-doubt failure.
    """
    store = context["task_state_store"]
    record = store.get(in_flight_key(key))
    if record is not None:
        found = _reconcile(key, record, find, resubmit_if_in_doubt, in_doubt_help)
        if found is not None:
            _store(store, key, found)
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
        log.warning("%s=%s ended in a terminal failure (%s); submitting again as resubmit_failed allows",
                    key, existing, why)
    elif record is None and _try_number(context) > 1:
        log.warning("try %d of this task finds no record of an earlier submission for %s: none was sent, or a "
                    "task Clear discarded the task state; submitting", _try_number(context), key)

    record = {"since": datetime.now(timezone.utc).isoformat(), **(sent() if sent else {})}
    _remember(store, in_flight_key(key), record)
    try:
        value = submit()
    except SubmissionInDoubt as exc:
        found = _reconcile(key, record, find, resubmit_if_in_doubt, in_doubt_help, cause=exc)
        if found is None:  # resubmit_if_in_doubt: the record stays; the retry submits again on purpose
            raise
        return _store(store, key, found)
    except MalformedResponseError:
        raise  # the provider answered, but not with an id: the job may exist; the record stays
    except ProviderError:
        store.delete(in_flight_key(key))  # the provider answered with an error: nothing was created
        raise
    return _store(store, key, value)


def _reconcile(
    key: str, record: Any, find: Find | None, resubmit: bool, help_text: str, cause: BaseException | None = None
) -> Any:
    """The job an in-doubt submission started; None only when ``resubmit`` allows sending again; else fails."""
    record = record if isinstance(record, dict) else {}
    since = record.get("since", "an earlier try")
    if find is None:
        detail = "this provider offers no way to look it up"
    else:
        try:
            found = find(record)
        except Ambiguous as exc:
            found, detail = None, f"the lookup cannot tell which job is this submission's: {exc}"
        else:
            if found is not None:
                log.info("the submission for %s sent at %s was accepted after all: attaching to %s", key, since, found)
                return found
            detail = "the lookup finds no job that matches it exactly"
    if resubmit:
        log.warning("a submission for %s sent at %s is in doubt (%s); submitting again as resubmit_if_in_doubt "
                    "asks (this may start a second, paid job)", key, since, detail)
        return None
    raise AirflowFailException(
        f"a submission for {key} sent at {since} may have been accepted, but its answer never arrived"
        f"{f' ({cause})' if cause else ''}, and {detail}, so it is not sent again. {help_text} {CLEAR_HELP}"
    ) from cause


def _store(store: Any, key: str, value: T) -> T:
    log.info("remote id for %s: %s (storing it in the task state store)", key, value)
    _remember(store, key, value)
    store.delete(in_flight_key(key))
    return value


def _try_number(context: Context) -> int:
    return int(getattr(context.get("ti"), "try_number", 1) or 1)


def _remember(store: Any, key: str, value: Any) -> None:
    from airflow.sdk.execution_time.context import NEVER_EXPIRE

    store.set(key, value, retention=NEVER_EXPIRE)


def remembered(context: Context, key: str, default: Any = None) -> Any:
    """A value an earlier try stored (e.g. part of a multi-step submission)."""
    return context["task_state_store"].get(key, default)


def remember(context: Context, key: str, value: Any) -> None:
    _remember(context["task_state_store"], key, value)
