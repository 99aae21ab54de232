"""MiniMax's envelope: every base_resp code class, decided from the answer alone (no network)."""

from __future__ import annotations

import json

import pytest

from artifact_harvest.core.errors import (
    FatalProviderError,
    MalformedResponseError,
    ProviderError,
    QuotaExhausted,
    TransientProviderError,
)
from artifact_harvest.core.http import ApiResponse
from artifact_harvest.minimax.hook import MiniMaxHook


def answer(body, status: int = 200) -> ApiResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ApiResponse("minimax", "GET", "/v1/x", status, {}, raw, "req-1")


def envelope(code: int, msg: str = "m", **body) -> ApiResponse:
    return answer({**body, "base_resp": {"status_code": code, "status_msg": msg}})


def test_success_returns_the_body():
    assert MiniMaxHook().parse(envelope(0, "success", task_id="9"))["task_id"] == "9"


@pytest.mark.parametrize("code", [1002, 1039, 2045, 1000, 1001, 1013, 1024, 1033])
def test_rate_limit_and_transient_codes_are_retryable(code):
    with pytest.raises(TransientProviderError) as info:
        MiniMaxHook().parse(envelope(code))
    assert info.value.code == code


@pytest.mark.parametrize(("code", "meaning"), [
    (1004, "authentication"), (2049, "invalid API key"),
    (1026, "input rejected"), (1027, "output rejected"), (2013, "invalid parameters"),
])
def test_terminal_codes_fail_at_once_with_their_meaning(code, meaning):
    with pytest.raises(FatalProviderError) as info:
        MiniMaxHook().parse(envelope(code, "provider says no"))
    assert info.value.code == code
    assert meaning in str(info.value) and "provider says no" in str(info.value)


@pytest.mark.parametrize(("code", "meaning", "hint"), [
    (1008, "insufficient balance", "top up the MiniMax account"),
    (2056, "usage limit exceeded", "next 5-hour usage window"),
    (1028, "quota exhausted", "top up the account"),
    (1030, "quota exhausted", "top up the account"),
    (2061, "model not in the plan", "a model the plan includes"),
])
def test_money_and_quota_codes_are_quota_exhausted(code, meaning, hint):
    with pytest.raises(QuotaExhausted) as info:
        MiniMaxHook().parse(envelope(code, "provider says no"))
    error = info.value
    assert not isinstance(error, (TransientProviderError, FatalProviderError))  # the retry policy decides
    assert error.code == code and meaning in str(error) and "provider says no" in str(error)
    assert error.reason.endswith(f"fails without retrying: {error.hint}") and hint in error.hint
    assert f"code {code}" in error.reason and "request id req-1" in error.reason


def test_unknown_code_is_a_plain_provider_error():
    with pytest.raises(ProviderError) as info:
        MiniMaxHook().parse(envelope(1042, "invisible characters"))
    assert not isinstance(info.value, (TransientProviderError, FatalProviderError))
    assert info.value.code == 1042


def test_missing_envelope_is_malformed():
    with pytest.raises(MalformedResponseError, match="base_resp"):
        MiniMaxHook().parse(answer({"task_id": "1"}))


def test_http_5xx_without_envelope_is_transient():
    with pytest.raises(TransientProviderError):
        MiniMaxHook().parse(answer(b"<html>bad gateway</html>", status=502))
