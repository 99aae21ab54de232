"""The one place a provider's error codes are judged (``core.hook.ProviderCodes.classify``), from the answer alone."""

from __future__ import annotations

import pytest

from artifact_harvest.core.errors import FatalProviderError, ProviderError, TransientProviderError
from artifact_harvest.core.hook import ProviderCodes
from artifact_harvest.core.http import ApiResponse

CODES = ProviderCodes(refused=frozenset({7}), transient=frozenset({8}), fatal={9: "fix the key"},
                      meanings={7: "rate limit", 9: "bad key"})


def classify(status: int, code, message: str = "m", headers=None, codes: ProviderCodes = CODES) -> ProviderError:
    resp = ApiResponse("p", "GET", "/x", status, headers or {}, b"{}", "local-id")
    return codes.classify("p", resp, code, message, "provider-id")


@pytest.mark.parametrize("status", [200, 503])
def test_a_refused_code_is_a_refusal_with_the_providers_retry_after(status):
    error = classify(status, 7, headers={"Retry-After": "4"})
    assert type(error) is TransientProviderError and error.refused and error.retry_after == 4.0
    assert (error.code, error.request_id, error.provider_message) == (7, "provider-id", "rate limit: m")


@pytest.mark.parametrize(("status", "refused"), [(200, False), (503, False), (429, True)])
def test_a_transient_code_is_refused_only_in_a_429(status, refused):
    error = classify(status, 8)
    assert type(error) is TransientProviderError and error.refused is refused and error.provider_message == "m"


def test_a_fatal_code_fails_at_once_with_its_hint_unless_the_status_is_transient():
    error = classify(200, 9, "Bad key: denied")
    assert type(error) is FatalProviderError and error.hint == "fix the key"
    assert error.provider_message == "Bad key: denied"  # the meaning is not repeated
    busy = classify(503, 9)
    assert type(busy) is TransientProviderError and not busy.refused and busy.hint == "fix the key"


@pytest.mark.parametrize(("status", "kind"), [(200, ProviderError), (409, ProviderError), (403, FatalProviderError),
                                              (502, TransientProviderError)])
def test_an_unlisted_code_follows_the_http_status(status, kind):
    error = classify(status, 99, "odd")
    assert type(error) is kind and (error.code, error.request_id, error.http_status) == (99, "provider-id", status)


def test_the_status_is_named_only_where_it_says_something_when_errors_come_in_http_200():
    quiet = ProviderCodes(fatal={9: "fix the key"}, status_with_code=False)
    assert classify(200, 9, codes=quiet).http_status is None
    assert classify(200, 99, codes=quiet).http_status is None
    assert classify(502, 99, codes=quiet).http_status == 502  # the status decided
    assert "HTTP 200" in str(classify(200, 9)) and "HTTP 200" not in str(classify(200, 9, codes=quiet))
