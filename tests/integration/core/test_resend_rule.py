"""The one resend rule against real sockets: what provably never reached the server is resent for every call;
a call that is not resendable and whose outcome is unknown raises SubmissionInDoubt after exactly one request.

The rule decides from where the failure happened: while connecting (resent) or after the request was written
(in doubt). The TLS proxy (tests/tls_proxy.py) produces both with the same exception class for requests."""

from __future__ import annotations

import socket
from urllib.parse import parse_qsl, urlsplit

import pytest

from artifact_harvest.core.errors import SubmissionInDoubt, TransientProviderError
from artifact_harvest.core.http import ApiClient, ApiResponse, Call
from artifact_harvest.core.retry import RetryRule
from harvest_emulator.credentials import MINIMAX_API_KEY
from tests.tls_proxy import tls_proxy, tls_proxy_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

ATTEMPTS = 3


def _status(resp: ApiResponse) -> int:
    if resp.status >= 400:
        raise resp.http_error()
    return resp.status


def client(base_url: str, **kwargs) -> ApiClient:
    kwargs.setdefault("retry", RetryRule(attempts=ATTEMPTS, base_delay=0.01, max_delay=0.02))
    kwargs.setdefault("parse", _status)
    return ApiClient(provider="test", base_url=base_url, **kwargs)


async def send(api: ApiClient, call: Call, mode: str):
    return api.send(call) if mode == "sync" else await api.asend(call)


@pytest.fixture
def blob(emu):
    """A real route (the signed blob GET); each test decides whether the call counts as resendable."""
    parts = urlsplit(emu.control.create_blob(64, "a.bin")["url"])
    return parts.path, dict(parse_qsl(parts.query))


def hits(emu, path: str) -> int:
    return len([r for r in emu.control.requests() if r["path"] == path])


@pytest.fixture
def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again: nothing listens there


@pytest.fixture
def full_backlog():
    """A listener that never accepts, its backlog filled: the next connect times out (SYNs are dropped)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    yield port
    for sock in (*fillers, server):
        sock.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_connection_refused_is_resent_even_for_a_create(refused_port, mode):
    api = client(f"http://127.0.0.1:{refused_port}")
    with pytest.raises(TransientProviderError) as info:
        await send(api, Call("POST", "/create"), mode)
    assert not isinstance(info.value, SubmissionInDoubt) and info.value.refused


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_connect_timeout_is_resent_even_for_a_create(full_backlog, mode):
    api = client(f"http://127.0.0.1:{full_backlog}", timeout=(0.3, 5.0))
    with pytest.raises(TransientProviderError) as info:
        await send(api, Call("POST", "/create"), mode)
    assert not isinstance(info.value, SubmissionInDoubt) and info.value.refused
    assert "timeout" in str(info.value).lower()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_unknown_host_is_resent_even_for_a_create(mode):
    api = client("http://artifact-harvest-test.invalid")
    with pytest.raises(TransientProviderError) as info:
        await send(api, Call("POST", "/create"), mode)
    assert not isinstance(info.value, SubmissionInDoubt) and info.value.refused


@pytest.fixture
def silent_tls_port():
    """A listener that never accepts: TCP connects (the kernel's backlog), the TLS handshake gets no answer."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_tls_handshake_timeout_is_resent_even_for_a_create(silent_tls_port, mode):
    """requests reports a handshake timeout as a *read* timeout: only the recorded phase says nothing was sent."""
    api = client(f"https://127.0.0.1:{silent_tls_port}", timeout=(0.3, 5.0), verify=False)
    with pytest.raises(TransientProviderError) as info:
        await send(api, Call("POST", "/create"), mode)
    assert not isinstance(info.value, SubmissionInDoubt) and info.value.refused


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_tls_handshake_failure_is_resent_even_for_a_create(emu, mode):
    """https:// to the plain-HTTP emulator: the handshake fails before any request is sent."""
    api = client(emu.url.replace("http://", "https://"), verify=False)
    with pytest.raises(TransientProviderError) as info:
        await send(api, Call("POST", "/v1/video_generation"), mode)
    assert not isinstance(info.value, SubmissionInDoubt) and info.value.refused
    assert "SSL" in str(info.value)
    assert hits(emu, "/v1/video_generation") == 0


def minimax(emu) -> ApiClient:
    return client(emu.url, headers={"Authorization": f"Bearer {MINIMAX_API_KEY}"})


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_answer_dropped_after_processing_is_in_doubt_for_a_create(emu, mode):
    path = "/v1/video_generation"
    emu.control.add_fault(route=path, kind="drop_answer", times=-1)
    with pytest.raises(SubmissionInDoubt, match="not sent again") as info:
        await send(minimax(emu), Call("POST", path, json={"model": "T2V-01", "prompt": "a lighthouse"}), mode)
    assert "Disconnected" in str(info.value)
    assert hits(emu, path) == 1 and len(emu.control.jobs("minimax")) == 1  # processed once, never resent


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_answer_dropped_after_processing_is_resent_for_a_read(emu, mode):
    path = "/v1/files/list"
    emu.control.add_fault(route=path, kind="drop_answer", times=1)
    assert await send(minimax(emu), Call("GET", path, {"purpose": "video_generation"}), mode) == 200
    assert hits(emu, path) == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_read_timeout_is_in_doubt_for_a_create(emu, blob, mode):
    path, query = blob
    emu.control.add_fault(route=path, kind="hang", seconds=2, times=-1)
    with pytest.raises(SubmissionInDoubt, match="not sent again"):
        await send(client(emu.url, timeout=(2.0, 0.3)), Call("GET", path, query, resendable=False), mode)
    assert hits(emu, path) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("status", "in_doubt"), [(500, True), (502, True), (503, True), (504, True), (429, False)])
async def test_statuses_for_a_create(emu, blob, mode, status, in_doubt):
    path, query = blob
    emu.control.add_fault(route=path, kind="status", status=status, times=1)
    call = Call("GET", path, query, resendable=False)
    if in_doubt:
        with pytest.raises(SubmissionInDoubt) as info:
            await send(client(emu.url), call, mode)
        assert info.value.http_status == status and hits(emu, path) == 1
    else:
        assert await send(client(emu.url), call, mode) == 200
        assert hits(emu, path) == 2


def test_calls_are_resendable_by_method_unless_told():
    assert Call("GET", "/x").resendable and Call("DELETE", "/x").resendable
    assert not Call("POST", "/x").resendable
    assert Call("POST", "/x", resendable=True).resendable


# -- through the TLS proxy: the create is processed, then the answer is broken --------------------------------
VIDEO = "/v1/video_generation"
VIDEO_BODY = {"model": "T2V-01", "prompt": "a lighthouse"}


def minimax_tls(proxy, **kwargs) -> ApiClient:
    from artifact_harvest.minimax.hook import MiniMaxHook

    return client(proxy.url, headers={"Authorization": f"Bearer {MINIMAX_API_KEY}"}, verify=False,
                  parse=MiniMaxHook().parse, **kwargs)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("fault", ["break_record", "alert"])
async def test_a_tls_record_broken_after_the_create_is_in_doubt(tls_proxy, emu, mode, fault):
    tls_proxy.plan(fault, fault, fault)
    with pytest.raises(SubmissionInDoubt, match="not sent again") as info:
        await send(minimax_tls(tls_proxy), Call("POST", VIDEO, json=VIDEO_BODY), mode)
    assert "SSL" in str(info.value)
    assert tls_proxy.forwarded == 1 and hits(emu, VIDEO) == 1 and len(emu.control.jobs("minimax")) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_tls_record_broken_on_a_read_is_resent(tls_proxy, emu, mode):
    path = "/v1/files/list"
    tls_proxy.plan("break_record")
    answer = await send(minimax_tls(tls_proxy), Call("GET", path, {"purpose": "video_generation"}), mode)
    assert answer["base_resp"]["status_code"] == 0
    assert tls_proxy.forwarded == 2 and hits(emu, path) == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_failed_handshake_is_resent_and_creates_one_job(tls_proxy, emu, mode):
    tls_proxy.plan("handshake_close", "handshake_close")
    answer = await send(minimax_tls(tls_proxy), Call("POST", VIDEO, json=VIDEO_BODY), mode)
    [job] = emu.control.jobs("minimax")
    assert answer["task_id"] == job["job_id"]
    assert tls_proxy.applied == ["handshake_close", "handshake_close", "pass"]
    assert tls_proxy.forwarded == 1 and hits(emu, VIDEO) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_bare_503_after_the_create_was_processed_is_in_doubt(tls_proxy, emu, mode):
    tls_proxy.plan("bare_503", "bare_503")
    with pytest.raises(SubmissionInDoubt, match="not sent again") as info:
        await send(minimax_tls(tls_proxy), Call("POST", VIDEO, json=VIDEO_BODY), mode)
    assert info.value.http_status == 503
    assert tls_proxy.forwarded == 1 and len(emu.control.jobs("minimax")) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_bare_503_on_a_read_is_resent(tls_proxy, emu, mode):
    path = "/v1/files/list"
    tls_proxy.plan("bare_503", "bare_503")
    answer = await send(minimax_tls(tls_proxy), Call("GET", path, {"purpose": "video_generation"}), mode)
    assert answer["base_resp"]["status_code"] == 0
    assert tls_proxy.forwarded == 3 and hits(emu, path) == 3


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_the_providers_own_rate_limit_code_in_a_503_is_resent_for_a_create(emu, mode):
    """MiniMax's 1002 proves nothing was done, whatever HTTP status carries it: the create is sent again."""
    emu.control.add_fault(route=VIDEO, kind="status", status=503, times=2,
                          body={"base_resp": {"status_code": 1002, "status_msg": "rate limit exceeded"}})
    from artifact_harvest.minimax.hook import MiniMaxHook

    api = client(emu.url, headers={"Authorization": f"Bearer {MINIMAX_API_KEY}"}, parse=MiniMaxHook().parse)
    answer = await send(api, Call("POST", VIDEO, json=VIDEO_BODY), mode)
    [job] = emu.control.jobs("minimax")
    assert answer["task_id"] == job["job_id"] and hits(emu, VIDEO) == 3
