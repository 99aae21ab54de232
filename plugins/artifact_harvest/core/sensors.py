"""Sensor base: poke, reschedule and deferrable modes judge the remote job with the same status function."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout

from artifact_harvest.core.errors import TransientProviderError
from artifact_harvest.core.idempotency import remember, remembered
from artifact_harvest.core.polling import Phase, PollingTrigger, PollResult

#: the defer timeout is a backstop a little after the trigger's own deadline, so the trigger's clean
#: "timeout" event (with its message) normally wins
DEFER_GRACE = timedelta(minutes=5)
#: consecutive transient failures of poke/reschedule mode (the trigger counts its own in memory)
TRANSIENT_ERRORS_KEY = "sensor_transient_errors"


class PollingSensor(BaseSensorOperator):
    """Wait for a remote job; deferrable by default.

    Subclasses implement :meth:`check` (one sync look through the hook, judged by the provider's
    ``status`` module) and name their ``trigger_class`` (the async twin): :meth:`build_trigger` gives it
    the sensor's attributes named in its ``poll_fields`` and the deadline and cadence of
    :meth:`trigger_timing`. The result's payload is the task's return value (XCom): small JSON, never a URL.

    :param poll_interval: templated override of ``poke_interval`` (e.g. ``"{{ params.poll_interval }}"``):
        Airflow checks ``poke_interval`` and ``timeout`` as numbers when the DAG is parsed, so a DAG param
        can only reach them through these two.
    :param wait_timeout: templated override of ``timeout``, in seconds.
    """

    template_fields: Sequence[str] = ("poll_interval", "wait_timeout")
    trigger_class: ClassVar[type[PollingTrigger]]

    def __init__(
        self,
        *,
        deferrable: bool = True,
        max_transient_errors: int = 5,
        poke_interval: float = 60,
        timeout: float = 7 * 24 * 3600,
        poll_interval: float | str | None = None,
        wait_timeout: float | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.deferrable = deferrable
        self.max_transient_errors = max_transient_errors
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.running_ti: Any = None
        self._errors_in_memory = 0

    def _apply_templated_timing(self) -> None:
        if self.poll_interval not in (None, ""):
            self.poke_interval = float(self.poll_interval)
        if self.wait_timeout not in (None, ""):
            self.timeout = float(self.wait_timeout)

    def trigger_timing(self, end_time: float) -> dict[str, Any]:
        """The :class:`PollingTrigger` kwargs every sensor passes the same way."""
        return {
            "end_time": end_time,
            "poll_interval": float(self.poke_interval),
            "max_transient_errors": self.max_transient_errors,
        }

    def check(self, context: Context) -> PollResult:
        raise NotImplementedError

    def build_trigger(self, end_time: float) -> PollingTrigger:
        """The :attr:`trigger_class` waiting for what this sensor checks, until ``end_time``."""
        fields = {name: getattr(self, name) for name in self.trigger_class.poll_fields}
        return self.trigger_class(**fields, **self.trigger_timing(end_time))

    # -- poke / reschedule ---------------------------------------------------------------------------
    def poke(self, context: Context) -> bool | PokeReturnValue:
        """One look; like the trigger, a run of more than ``max_transient_errors`` transient failures in a
        row goes to Airflow's retries (the count lives in the task state store, so reschedule mode keeps it)."""
        errors = self._transient_errors(context)
        try:
            result = self.check(context)
        except TransientProviderError as exc:
            self._transient_errors(context, errors + 1)
            if errors + 1 > self.max_transient_errors:
                raise AirflowException(f"{errors + 1} transient errors in a row; last: {exc}") from exc
            self.log.warning("transient error %d/%d, will poke again: %s", errors + 1, self.max_transient_errors, exc)
            return False
        if errors:
            self._transient_errors(context, 0)
        if result.phase is Phase.SUCCESS:
            self.log.info("%s", result.message or "ready")
            return PokeReturnValue(is_done=True, xcom_value=result.payload)
        if result.phase is Phase.FAILED:
            raise AirflowFailException(result.message)
        self.log.info("%s", result.message or "still running")
        return False

    def _transient_errors(self, context: Context, count: int | None = None) -> int:
        """Read (or set) the run of transient errors: in the task state store, else (a bare context) in memory."""
        if "task_state_store" not in context:
            self._errors_in_memory = self._errors_in_memory if count is None else count
            return self._errors_in_memory
        if count is not None:
            remember(context, TRANSIENT_ERRORS_KEY, count)
            return count
        return int(remembered(context, TRANSIENT_ERRORS_KEY, 0))

    # -- deferrable ----------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        self.running_ti = context.get("ti")  # for on_kill: was the task killed, or cleared?
        self._apply_templated_timing()
        if not self.deferrable:
            return super().execute(context)
        try:
            result = self.check(context)  # no deferral at all when the job is already done
        except TransientProviderError as exc:
            self.log.warning("transient error before deferring, the trigger will retry: %s", exc)
            result = PollResult.running()
        if result.phase is Phase.SUCCESS:
            self.log.info("%s", result.message or "ready")
            return result.payload
        if result.phase is Phase.FAILED:
            raise AirflowFailException(result.message)
        self.log.info("%s; deferring (poll every %ss)", result.message or "not ready", self.poke_interval)
        self.defer(
            trigger=self.build_trigger(time.time() + float(self.timeout)),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)) + DEFER_GRACE,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        return judge_event(event)


def judge_event(event: dict[str, Any] | None) -> dict[str, Any]:
    """Turn a :class:`PollingTrigger` event into a return value or the right exception."""
    if not event or "status" not in event:
        raise AirflowException(f"trigger returned no usable event: {event!r}")
    payload = dict(event)
    status = payload.pop("status")
    message = payload.pop("message", "")
    if status == "success":
        return payload
    if status == "failed":
        raise AirflowFailException(message)
    if status == "timeout":
        raise AirflowSensorTimeout(message)
    if status == "error" and payload.get("retryable"):
        raise AirflowException(message)
    raise AirflowFailException(message)
