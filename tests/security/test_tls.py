"""Downloads and API calls verify TLS unless the connection explicitly says ``verify_ssl: false``."""

from __future__ import annotations

import http.server
import importlib
import json
import ssl
import threading
from collections.abc import Iterator

import pytest

from artifact_harvest.core.errors import DownloadError
from artifact_harvest.core.transfer import Downloader, RemoteFile
from artifact_harvest.core.retry import RetryRule
from tests.tls_proxy import self_signed, tls_proxy, tls_proxy_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

BODY = b"archive me over TLS" * 1000


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def https_url(tmp_path_factory) -> Iterator[str]:
    """An HTTPS server with a self-signed certificate, i.e. one a verifying client must refuse."""
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}/file.bin"
    finally:
        server.shutdown()
        server.server_close()


def test_download_refuses_an_unverifiable_certificate_by_default(https_url, tmp_path):
    downloader = Downloader(tmp_path, retry=RetryRule(attempts=2, base_delay=0.01, max_delay=0.01))
    with pytest.raises(DownloadError) as info:
        downloader.download(lambda: RemoteFile(https_url, "file.bin"), key="k")
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) or "SSL" in str(info.value)
    assert not (tmp_path / "k" / "file.bin").exists()


def test_download_without_verification_only_when_asked(https_url, tmp_path):
    done = Downloader(tmp_path, verify_tls=False).download(lambda: RemoteFile(https_url, "file.bin"), key="k")
    assert done.path.read_bytes() == BODY


def _provider_hooks() -> list[type]:
    from artifact_harvest.provider_info import get_provider_info

    hooks = []
    for entry in get_provider_info()["connection-types"]:
        module, _, name = entry["hook-class-name"].rpartition(".")
        try:
            hooks.append(getattr(importlib.import_module(module), name))
        except ImportError:  # a provider still being written: nothing to check yet
            continue
    return hooks


@pytest.mark.parametrize("hook_class", _provider_hooks(), ids=lambda h: h.__name__)
@pytest.mark.parametrize(("extra", "verify"), [({}, True), ({"verify_ssl": False}, False), ({"verify_ssl": "false"}, False)])
def test_api_calls_verify_unless_the_connection_opts_out(hook_class, extra, verify, monkeypatch):
    from harvest_emulator.credentials import connection_env

    env_name = f"AIRFLOW_CONN_{hook_class.default_conn_name.upper()}"
    conn = json.loads(connection_env("https://provider.example")[env_name])
    conn["extra"] = {**conn.get("extra", {}), **extra}
    monkeypatch.setenv(env_name, json.dumps(conn))
    assert hook_class().client.verify is verify


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_api_client_refuses_an_unverifiable_certificate_before_sending(tls_proxy, emu, mode):
    """A certificate that fails verification fails the handshake: nothing was sent, so even a create is resent
    (it is never in doubt), and after the attempts the error names the certificate."""
    from artifact_harvest.core.errors import SubmissionInDoubt, TransientProviderError
    from artifact_harvest.core.http import ApiClient, Call

    client = ApiClient(provider="tls", base_url=tls_proxy.url, parse=lambda resp: resp.status,
                       retry=RetryRule(attempts=3, base_delay=0.01, max_delay=0.01))
    call = Call("POST", "/v1/video_generation", json={"model": "T2V-01", "prompt": "x"})
    with pytest.raises(TransientProviderError) as info:
        client.send(call) if mode == "sync" else await client.asend(call)
    assert not isinstance(info.value, SubmissionInDoubt) and info.value.refused
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) or "certificate verify failed" in str(info.value)
    assert tls_proxy.connections == 3 and tls_proxy.forwarded == 0  # three handshakes, no request
    assert emu.control.requests("/v1/video_generation") == []
    unverified = ApiClient(provider="tls", base_url=tls_proxy.url, parse=lambda resp: resp.status, verify=False)
    assert unverified.send(call) == 200  # the server itself is fine


def _download_operators() -> list[type]:
    from artifact_harvest.flighthub2.operators import FlightHub2DownloadModelOperator
    from artifact_harvest.minimax.operators import MiniMaxDownloadOperator
    from artifact_harvest.qianfan.operators import QianfanDownloadExportOperator

    return [FlightHub2DownloadModelOperator, MiniMaxDownloadOperator, QianfanDownloadExportOperator]


_OPERATOR_KWARGS = {
    "FlightHub2DownloadModelOperator": {"file_id": "1", "artifact_key": "k"},
    "MiniMaxDownloadOperator": {"file_id": 1},
    "QianfanDownloadExportOperator": {"model_id": "amv-x", "export_id": "amve-x"},
}


@pytest.mark.parametrize("operator_class", _download_operators(), ids=lambda c: c.__name__)
@pytest.mark.parametrize(("extra", "verify"), [({}, True), ({"verify_ssl": False}, False)])
def test_downloads_follow_the_connections_tls_setting(operator_class, extra, verify, monkeypatch):
    """The connection's ``verify_ssl`` reaches the artifact download, not only the API calls."""
    from harvest_emulator.credentials import connection_env

    provider = operator_class.provider
    env_name = f"AIRFLOW_CONN_{provider.upper()}_DEFAULT"
    conn = json.loads(connection_env("https://provider.example")[env_name])
    conn["extra"] = {**conn.get("extra", {}), **extra}
    monkeypatch.setenv(env_name, json.dumps(conn))
    operator = operator_class(task_id="download", **_OPERATOR_KWARGS[operator_class.__name__])
    assert operator.verify_tls() is verify


@pytest.mark.parametrize("verify", [True, False])
def test_download_and_archive_passes_the_setting_to_the_downloader(https_url, verify, archive_root, staging_dir):
    from artifact_harvest.core.operators import download_and_archive

    def run() -> dict:
        return download_and_archive("tls", "k", lambda: RemoteFile(https_url, "file.bin"), {}, {},
                                    verify_tls=verify)

    if verify:
        with pytest.raises(DownloadError):
            run()
        assert not list(archive_root.rglob("*.bin"))
    else:
        assert run()["size_bytes"] == len(BODY)
        assert (archive_root / "tls" / "k" / "file.bin").read_bytes() == BODY
