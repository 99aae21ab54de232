"""The polling loop every trigger shares: one event, fail fast, bounded transient errors, a real deadline."""

from __future__ import annotations

import time

import pytest

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout
from artifact_harvest.core.errors import FatalProviderError, QuotaExhausted, TransientProviderError
from artifact_harvest.core.polling import PollingTrigger, PollResult
from artifact_harvest.core.sensors import judge_event


class ScriptedTrigger(PollingTrigger):
    """Answers from a script: PollResults, or exceptions to raise."""

    def __init__(self, script, **kwargs):
        super().__init__(**kwargs)
        self.script = list(script)
        self.polls = 0

    def poll_kwargs(self):
        return {"script": []}

    async def poll(self):
        self.polls += 1
        step = self.script.pop(0) if self.script else PollResult.running("still going")
        if isinstance(step, Exception):
            raise step
        return step


async def events_of(trigger):
    return [event.payload async for event in trigger.run()]


def make(script, **kwargs):
    kwargs.setdefault("end_time", time.time() + 30)
    kwargs.setdefault("poll_interval", 0.01)
    return ScriptedTrigger(script, **kwargs)


async def test_success_after_running_yields_exactly_one_event_with_payload():
    trigger = make([PollResult.running("10%"), PollResult.running("90%"), PollResult.success("done", file_id="f1")])
    assert await events_of(trigger) == [{"status": "success", "message": "done", "file_id": "f1"}]
    assert trigger.polls == 3


async def test_terminal_failure_fails_fast():
    trigger = make([PollResult.failed("reconstruction failed (error_code 1234)", error_code=1234)])
    (event,) = await events_of(trigger)
    assert event["status"] == "failed" and event["error_code"] == 1234
    assert trigger.polls == 1


async def test_transient_errors_are_tolerated_up_to_the_bound():
    flaky = [TransientProviderError("p", "rate limited", code=210429)] * 3
    trigger = make([*flaky, PollResult.success("ok")], max_transient_errors=3)
    assert (await events_of(trigger))[0]["status"] == "success"


async def test_too_many_transient_errors_end_with_a_retryable_error_event():
    trigger = make([TransientProviderError("p", "HTTP 503")] * 4, max_transient_errors=3)
    (event,) = await events_of(trigger)
    assert event["status"] == "error" and event["retryable"] is True
    assert "4 transient errors in a row" in event["message"]
    assert trigger.polls == 4


async def test_fatal_provider_error_is_not_retryable():
    trigger = make([FatalProviderError("p", "X-User-Token is invalid", code=200401)])
    (event,) = await events_of(trigger)
    assert event == {"status": "error", "message": "[p] X-User-Token is invalid (code 200401)",
                     "retryable": False, "code": 200401}


async def test_no_balance_in_a_trigger_fails_without_retries_saying_so():
    trigger = make([QuotaExhausted("minimax", "insufficient balance", code=1008, hint="top up the MiniMax account")])
    (event,) = await events_of(trigger)
    assert event["retryable"] is False and event["code"] == 1008
    assert event["message"] == "[minimax] insufficient balance (code 1008) fails without retrying: top up the MiniMax account"
    with pytest.raises(AirflowFailException, match="fails without retrying: top up"):
        judge_event(event)


async def test_wall_clock_deadline_ends_a_job_that_never_finishes():
    trigger = make([], end_time=time.time() + 0.2, poll_interval=0.05)
    started = time.monotonic()
    (event,) = await events_of(trigger)
    assert event["status"] == "timeout"
    assert time.monotonic() - started < 2


def test_serialize_round_trip_keeps_the_deadline():
    trigger = make([], end_time=1234.5, poll_interval=7, max_transient_errors=2)
    classpath, kwargs = trigger.serialize()
    assert classpath.endswith("test_polling.ScriptedTrigger")
    assert kwargs == {"script": [], "end_time": 1234.5, "poll_interval": 7.0, "max_transient_errors": 2}
    assert ScriptedTrigger(**kwargs).serialize() == (classpath, kwargs)


@pytest.mark.parametrize(
    ("event", "raises"),
    [
        ({"status": "failed", "message": "m"}, AirflowFailException),
        ({"status": "timeout", "message": "m"}, AirflowSensorTimeout),
        ({"status": "error", "message": "m", "retryable": True}, AirflowException),
        ({"status": "error", "message": "m", "retryable": False}, AirflowFailException),
        (None, AirflowException),
    ],
)
def test_judge_event_raises_the_right_exception(event, raises):
    with pytest.raises(raises) as info:
        judge_event(event)
    if raises is AirflowException and event:
        assert not isinstance(info.value, AirflowFailException)


def test_judge_event_returns_the_payload_on_success():
    assert judge_event({"status": "success", "message": "ok", "file_id": "7"}) == {"file_id": "7"}
