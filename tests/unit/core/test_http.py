"""The shared HTTP rule: backoff, Retry-After, transient statuses, redaction of secrets and signed URLs."""

from __future__ import annotations

import email.utils
import time

import pytest

from artifact_harvest.core.redact import Redactor, redact_url
from artifact_harvest.core.retry import RetryRule, is_transient_status, parse_retry_after


def test_backoff_grows_exponentially_within_jitter_and_cap():
    rule = RetryRule(attempts=6, base_delay=1.0, max_delay=10.0, jitter=0.5)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (6, 10)]:
        delays = [rule.delay(attempt) for _ in range(50)]
        assert all(ceiling * 0.5 <= d <= ceiling for d in delays), (attempt, min(delays), max(delays))


def test_retry_after_wins_but_is_capped():
    rule = RetryRule(attempts=3, base_delay=1.0, max_delay=5.0, max_retry_after=30.0)
    assert rule.delay(1, retry_after=7) == 7
    assert rule.delay(1, retry_after=3600) == 30


def test_parse_retry_after_seconds_and_http_date():
    assert parse_retry_after("12") == 12
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    in_five = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3 <= parse_retry_after(in_five) <= 5


@pytest.mark.parametrize(("status", "transient"), [(429, True), (500, True), (503, True), (404, False), (403, False)])
def test_transient_statuses(status, transient):
    assert is_transient_status(status) is transient


def test_redaction_removes_secrets_and_query_strings():
    redact = Redactor(["sk-api-supersecretvalue"])
    text = "GET https://cdn.example.com/f/a.mp4?Expires=1&Signature=abc failed with key sk-api-supersecretvalue"
    out = redact(text)
    assert "Signature" not in out and "sk-api-supersecretvalue" not in out
    assert "https://cdn.example.com/f/a.mp4?***" in out
    assert redact("GET /x?Signature=abc&Expires=2 (Caused by ...)") == "GET /x?*** (Caused by ...)"
    assert redact("is it ready? yes") == "is it ready? yes"
    assert redact_url("https://h/p/x.tar?sig=1") == "https://h/p/x.tar?***"
    assert redact_url("https://h/p/x.tar") == "https://h/p/x.tar"


# -- the resend rule's classification, on constructed exceptions (no server needed or able to make them) -------
def _connector_key():
    from aiohttp.client_reqrep import ConnectionKey

    return ConnectionKey("provider.example", 443, True, True, None, None, None)


def test_never_reached_without_a_recorded_phase_trusts_only_connect_timeouts_constructed():
    """Outside ApiClient (no recorded phase) an SSLError may be a broken record after sending: in doubt."""
    import requests

    from artifact_harvest.core.phase import never_reached

    assert never_reached(requests.exceptions.ConnectTimeout("connect timed out"))
    assert not never_reached(requests.exceptions.SSLError("bad record mac"))
    assert not never_reached(requests.exceptions.ConnectionError("Connection aborted"))
    assert not never_reached(requests.exceptions.ReadTimeout("read timed out"))


@pytest.mark.parametrize(("sent", "expected"), [(False, True), (True, False)])
def test_never_reached_for_requests_follows_the_recorded_phase_constructed(sent, expected):
    import requests

    from artifact_harvest.core.phase import never_reached

    for exc in (requests.exceptions.SSLError("x"), requests.exceptions.ConnectionError("x"),
                requests.exceptions.ReadTimeout("x")):
        assert never_reached(exc, sent=sent) is expected, exc
    assert not never_reached(requests.exceptions.ChunkedEncodingError("x"), sent=False)  # not a transport failure


def test_never_reached_for_aiohttp_only_the_connector_family_constructed():
    """aiohttp raises ClientConnectorError (and its SSL/certificate/DNS subclasses) only while connecting."""
    import ssl

    import aiohttp

    from artifact_harvest.core.phase import never_reached

    key = _connector_key()
    assert never_reached(aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused")))
    assert never_reached(aiohttp.ClientConnectorSSLError(key, ssl.SSLError(1, "handshake failure")))
    assert never_reached(aiohttp.ClientConnectorCertificateError(key, ssl.SSLCertVerificationError("bad cert")))
    assert never_reached(aiohttp.ClientConnectorDNSError(key, OSError("no such host")))
    assert never_reached(aiohttp.ConnectionTimeoutError("connect timeout"))
    assert not never_reached(aiohttp.ClientOSError(1, "[SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC]"))
    assert not never_reached(aiohttp.ServerDisconnectedError())
    assert not never_reached(aiohttp.SocketTimeoutError("sock_read"))
    assert not never_reached(TimeoutError())


@pytest.mark.parametrize(("status", "refused"), [(429, True), (503, False), (500, False), (502, False), (504, False)])
def test_only_a_bare_429_counts_as_refused(status, refused):
    from artifact_harvest.core.errors import TransientProviderError
    from artifact_harvest.core.http import ApiResponse

    error = ApiResponse("p", "POST", "/create", status, {}, b"gateway page", "rid").http_error()
    assert isinstance(error, TransientProviderError) and error.refused is refused
