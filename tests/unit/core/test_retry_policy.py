"""The shared retry policy: its decision for each kind of provider failure, and that it serializes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from airflow.sdk import DAG, RetryAction, RetryPolicy, task
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from artifact_harvest.core.dag_defaults import default_args
from artifact_harvest.core.errors import (
    FatalProviderError,
    MalformedResponseError,
    ProviderError,
    QuotaExhausted,
    SubmissionInDoubt,
    TransientProviderError,
)
from artifact_harvest.core.retry_policy import PROVIDER_RETRY_POLICY, ProviderRetryPolicy

NO_BALANCE = QuotaExhausted("minimax", "insufficient balance", code=1008, request_id="t-1",
                            hint="top up the MiniMax account")


def decide(exc: BaseException, context=None):
    return PROVIDER_RETRY_POLICY.evaluate(exc, try_number=1, max_tries=2, context=context)


def test_no_balance_fails_without_retries_naming_the_code_and_what_to_do():
    decision = decide(NO_BALANCE)
    assert decision.action is RetryAction.FAIL and decision.retry_delay is None
    assert decision.reason == ("[minimax] insufficient balance (code 1008, request id t-1) fails without retrying: "
                               "top up the MiniMax account")


def test_quota_without_a_hint_still_says_what_to_do():
    decision = decide(QuotaExhausted("qianfan", "quota used up", code="QuotaLimitExceeded"))
    assert decision.action is RetryAction.FAIL
    assert decision.reason.endswith("fails without retrying: top up the account or wait for the quota to reset")


def test_rate_limit_retries_after_the_providers_delay():
    refused = TransientProviderError("minimax", "rate limit", code=1002, refused=True, retry_after=7.0)
    decision = decide(refused)
    assert decision.action is RetryAction.RETRY and decision.retry_delay == timedelta(seconds=7)
    assert "code 1002" in decision.reason and "Retry-After (7 s)" in decision.reason


def test_a_long_retry_after_waits_no_longer_than_the_tasks_max_retry_delay():
    refused = TransientProviderError("qianfan", "slow down", http_status=429, refused=True, retry_after=3600.0)
    context = {"task": SimpleNamespace(max_retry_delay=timedelta(minutes=10))}
    assert decide(refused, context).retry_delay == timedelta(minutes=10)
    assert decide(refused, {"task": SimpleNamespace(max_retry_delay=None)}).retry_delay == timedelta(hours=1)


def test_rate_limit_without_retry_after_retries_after_the_tasks_own_delay():
    decision = decide(TransientProviderError("flighthub2", "too many requests", code=210429, refused=True))
    assert decision.action is RetryAction.RETRY and decision.retry_delay is None
    assert "the task's retry delay" in decision.reason


@pytest.mark.parametrize("exc", [
    TransientProviderError("minimax", "internal error", code=1024),  # not refused: may have done work
    TransientProviderError("minimax", "bad gateway", http_status=503, retry_after=5.0),
    ProviderError("minimax", "brand new code", code=4242),
    MalformedResponseError("qianfan", "result", "is missing"),
    SubmissionInDoubt("qianfan", "answer lost"),
    AirflowException("anything else"),
    ValueError("a bug"),
])
def test_everything_else_keeps_the_standard_retries(exc):
    decision = decide(exc)
    assert decision.action is RetryAction.DEFAULT and decision.retry_delay is None and decision.reason is None


def test_only_fatal_errors_bypass_the_policy():
    """Airflow never consults a policy for an AirflowFailException: fatal codes stay that; quota must not be one."""
    assert isinstance(FatalProviderError("p", "bad key"), AirflowFailException)
    assert not isinstance(NO_BALANCE, AirflowFailException)
    assert isinstance(NO_BALANCE, AirflowException)  # the task runner's failure path evaluates the policy


def test_serialize_round_trip():
    data = json.loads(json.dumps(PROVIDER_RETRY_POLICY.serialize()))
    back = ProviderRetryPolicy.deserialize(data)
    assert isinstance(back, RetryPolicy) and back == PROVIDER_RETRY_POLICY and back.serialize() == data
    assert back.evaluate(NO_BALANCE, 1, 2) == decide(NO_BALANCE)
    with pytest.raises(ValueError, match="not a serialized"):
        ProviderRetryPolicy.deserialize({"__type": "ExceptionRetryPolicy", "rules": []})


def test_shared_default_args_carry_the_policy_and_a_dag_with_it_serializes():
    from airflow.serialization.serialized_objects import DagSerialization

    assert default_args()["retry_policy"] is PROVIDER_RETRY_POLICY
    with DAG("retry_policy_shape", schedule=None, start_date=datetime(2026, 1, 1), default_args=default_args()) as dag:
        @task
        def call() -> None:
            pass

        call()
    assert dag.task_dict["call"].retry_policy is PROVIDER_RETRY_POLICY
    serialized = DagSerialization.serialize_dag(dag)
    text = json.dumps(serialized)
    assert "object at 0x" not in text and text == json.dumps(DagSerialization.serialize_dag(dag))  # stable
    [op] = serialized["tasks"]
    assert op["__var"]["has_retry_policy"] is True and serialized["default_args"]["__var"]["has_retry_policy"]
    assert DagSerialization.deserialize_dag(serialized).task_dict["call"].has_retry_policy


def test_provider_tasks_outside_the_pipeline_dags_get_the_policy_unless_they_name_one():
    from airflow.sdk import DAG

    from artifact_harvest.core.retry_policy import PROVIDER_RETRY_POLICY, ProviderRetryPolicy
    from artifact_harvest.minimax.operators import MiniMaxCreateVideoOperator
    from artifact_harvest.minimax.sensors import MiniMaxTaskSensor

    own = ProviderRetryPolicy()
    own_in_defaults = ProviderRetryPolicy()
    with DAG("bare", schedule=None):
        bare = MiniMaxCreateVideoOperator(task_id="create", prompt="p")
        sensor = MiniMaxTaskSensor(task_id="wait", minimax_task_id="1")
        named = MiniMaxCreateVideoOperator(task_id="named", prompt="p", retry_policy=own)
    with DAG("defaults", schedule=None, default_args={"retry_policy": own_in_defaults}):
        from_defaults = MiniMaxCreateVideoOperator(task_id="create", prompt="p")
    assert bare.retry_policy is PROVIDER_RETRY_POLICY and sensor.retry_policy is PROVIDER_RETRY_POLICY
    assert named.retry_policy is own
    assert from_defaults.retry_policy is own_in_defaults
