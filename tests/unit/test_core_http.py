"""The shared HTTP rule: backoff, Retry-After, transient statuses, redaction of secrets and signed URLs."""

from __future__ import annotations

import email.utils
import time

import pytest

from artifact_harvest.core.http import Redactor, RetryRule, is_transient_status, parse_retry_after, redact_url


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
