"""ApiClient against the emulator over real HTTP: the shared retry rule, sync and async alike."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlsplit

import pytest

from artifact_harvest.core.errors import FatalProviderError, TransientProviderError
from artifact_harvest.core.http import ApiClient, ApiResponse
from artifact_harvest.core.retry import RetryRule


def _status(resp: ApiResponse) -> int:
    if resp.status >= 400:
        raise resp.http_error()
    return resp.status


@pytest.fixture
def blob(emu):
    info = emu.control.create_blob(1024, "a.bin")
    parts = urlsplit(info["url"])
    return parts.path, dict(parse_qsl(parts.query))


def _lower(headers: dict) -> dict:
    return {k.lower(): v for k, v in headers.items()}


def client(emu, **kwargs) -> ApiClient:
    kwargs.setdefault("retry", RetryRule(attempts=4, base_delay=0.01, max_delay=0.05))
    return ApiClient(provider="test", base_url=emu.url, parse=_status, **kwargs)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_5xx_burst_is_retried_with_a_fresh_request_id_each_attempt(emu, blob, mode):
    path, query = blob
    emu.control.add_fault(route=path, kind="status", status=503, times=3)
    api = client(emu)
    result = api.call("GET", path, params=query) if mode == "sync" else await api.acall("GET", path, params=query)
    assert result == 200
    seen = emu.control.requests(path=path)
    assert [r["status"] for r in seen] == [503, 503, 503, 200]
    ids = {_lower(r["headers"])["x-request-id"] for r in seen}
    assert len(ids) == 4


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_429_honours_retry_after(emu, blob, mode):
    path, query = blob
    emu.control.add_fault(route=path, kind="status", status=429, retry_after=1, times=1)
    api = client(emu)
    started = time.monotonic()
    result = api.call("GET", path, params=query) if mode == "sync" else await api.acall("GET", path, params=query)
    assert result == 200
    assert time.monotonic() - started >= 0.9  # waited what the server asked, not the 0.01 s backoff


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_4xx_is_not_retried(emu, blob, mode):
    path, query = blob
    emu.control.add_fault(route=path, kind="status", status=403, times=5)
    api = client(emu)
    with pytest.raises(FatalProviderError) as info:
        api.call("GET", path, params=query) if mode == "sync" else await api.acall("GET", path, params=query)
    assert "HTTP 403" in str(info.value)
    assert len(emu.control.requests(path=path)) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_gives_up_after_the_attempts_with_the_last_error(emu, blob, mode):
    path, query = blob
    emu.control.add_fault(route=path, kind="status", status=502, times=-1)
    api = client(emu)
    with pytest.raises(TransientProviderError, match="HTTP 502"):
        api.call("GET", path, params=query) if mode == "sync" else await api.acall("GET", path, params=query)
    assert len(emu.control.requests(path=path)) == 4


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_hanging_server_hits_the_timeout_and_is_retried(emu, blob, mode):
    path, query = blob
    emu.control.add_fault(route=path, kind="hang", seconds=5, times=1)
    api = client(emu, timeout=(1.0, 0.3))
    started = time.monotonic()
    result = api.call("GET", path, params=query) if mode == "sync" else await api.acall("GET", path, params=query)
    assert result == 200
    assert time.monotonic() - started < 4


def test_connection_refused_is_transient_and_names_no_secret():
    api = ApiClient(provider="test", base_url="http://127.0.0.1:9", parse=_status,
                    retry=RetryRule(attempts=2, base_delay=0.01, max_delay=0.01))
    with pytest.raises(TransientProviderError) as info:
        api.call("GET", "/x", params={"Signature": "topsecretsignature"})
    assert "topsecretsignature" not in str(info.value)
