"""What every pipeline DAG shares, so the builders stay thin: the DAG header, default args, tags, the waiting
Params (and the run deadline they carry)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from artifact_harvest.core.deadlines import DEADLINE_PARAM, deadline_param, late_run_alert
from artifact_harvest.core.retry_policy import PROVIDER_RETRY_POLICY

OWNER = "artifact-harvest"

#: every DAG the demo and the distributed test trigger carries this tag
PIPELINE_TAG = "pipeline"

#: every pipeline's start_date (the scheduled ones never catch up: a run reaches back to its watermark, docs/sweeps.md)
START_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)


def default_args(**overrides: Any) -> dict[str, Any]:
    """Retries with exponential backoff: remote APIs and large downloads fail transiently."""
    return {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
        "retry_policy": PROVIDER_RETRY_POLICY,  # money/quota: no retries; rate limits: Retry-After (docs/errors.md)
        **overrides,
    }


def tags(provider: str, *more: str) -> list[str]:
    return ["artifact-harvest", provider, *more]


#: where the trigger forms put what most runs leave alone
WAITING_SECTION = "Waiting (advanced)"


def duration_seconds(value: str | float) -> float:
    """An ISO 8601 duration from a trigger form (``PT6H``, ``P7D``) in seconds, for a sensor's timeout.

    Airflow 3.3 renders ``format: duration`` Params as a checked text box; this filter (``| seconds`` in a
    template) turns the value back into the seconds the sensors take. Positive numbers (a run's conf, the REST
    API) are seconds already.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"expected a positive number of seconds, got {value!r}")
        return float(value)
    parsed = pendulum.parse(str(value).strip())
    if not isinstance(parsed, pendulum.Duration) or parsed.total_seconds() <= 0:
        raise ValueError(f"expected a positive ISO 8601 duration such as PT6H or P7D, got {value!r}")
    return parsed.total_seconds()


#: ``user_defined_filters`` of every DAG with a duration Param
FILTERS = {"seconds": duration_seconds}


def timeout_param(default: str, what: str) -> Param:
    """The wait timeout: an ISO 8601 duration a person reads (``P7D`` rather than 604800), or seconds.

    The form shows the duration box: with no top-level ``type``, the UI takes the type of the default (a string)
    and the top-level ``format: duration`` (a list of types would give a plain text box). A run's conf or the
    REST API may send a number of seconds (``"timeout": 240``): ``anyOf`` admits both. Anything else is refused
    when the run is triggered, naming ``timeout``.
    """
    return Param(default, format="duration", anyOf=[{"type": "string", "format": "duration"},
                                                    {"type": "number", "exclusiveMinimum": 0}], title="Timeout",
                 section=WAITING_SECTION,
                 description=f"How long to wait for {what} before the run fails: an ISO 8601 duration, e.g. "
                 "PT30M (30 minutes), PT6H (6 hours), P1D (1 day), P7D (7 days); a run's conf may also give "
                 "a number of seconds.")


def poll_interval_param(default: float, hint: str, minimum: float = 0.05) -> Param:
    return Param(default, type="number", minimum=minimum, maximum=3600, title="Poll interval (seconds)",
                 section=WAITING_SECTION, description=f"Seconds between status checks while waiting. {hint}")


def waiting_params(poll_interval: float, poll_hint: str, timeout: str, what: str,
                   minimum: float = 0.05, deadline: str | None = None) -> dict[str, Param]:
    """``poll_interval``, ``timeout`` and ``deadline``, in the form's advanced section; pass the first two on
    with ``WAIT_ARGS`` (``pipeline_dag`` turns ``deadline`` into the DAG's Deadline Alert)."""
    return {"poll_interval": poll_interval_param(poll_interval, poll_hint, minimum),
            "timeout": timeout_param(timeout, what),
            DEADLINE_PARAM: deadline_param(deadline, WAITING_SECTION)}


#: a sensor's arguments from ``waiting_params`` (``pipeline_dag`` gives every DAG the ``seconds`` filter)
WAIT_ARGS = {"poll_interval": "{{ params.poll_interval }}", "wait_timeout": "{{ params.timeout | seconds }}"}


def pipeline_dag(dag_id: str, provider: str, *, description: str, doc_md: str, schedule: Any = None,
                 params: dict[str, Param] | None = None, **options: Any) -> DAG:
    """The DAG header every pipeline shares; use it as ``with pipeline_dag(...) as dag:``.

    Shared: ``start_date`` (``START_DATE``), no catchup, ``default_args()``, the tags
    ``artifact-harvest, <provider>, pipeline``, the ``seconds`` filter of ``WAIT_ARGS``, and with a ``deadline``
    Param (``waiting_params``) the Deadline Alert reading it per run (``core.deadlines``). ``doc_md`` is
    Markdown opening with a ``###`` heading (surrounding blank lines are dropped). ``options`` go to
    ``DAG`` as they are (``max_active_runs``, ``render_template_as_native_obj``).
    """
    if params and DEADLINE_PARAM in params and "deadline" not in options:
        options["deadline"] = late_run_alert(params[DEADLINE_PARAM].value)
    return DAG(
        dag_id=dag_id,
        description=description,
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        default_args=default_args(),
        tags=tags(provider, PIPELINE_TAG),
        doc_md=doc_md.strip(),
        user_defined_filters=FILTERS,
        params=params,
        **options,
    )
