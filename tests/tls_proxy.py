"""A real TLS server in front of the emulator: terminates TLS on 127.0.0.1, forwards each request to the plain
HTTP upstream, and misbehaves on the connections a test plans.

Faults, one per accepted connection in the order planned (then ``pass``):

- ``pass``: forward the request, relay the answer (``Connection: close``).
- ``handshake_close``: read the ClientHello, then close: the handshake fails, nothing is forwarded.
- ``break_record``: forward (the upstream processes the request), then write a corrupt TLS record on the raw
  socket instead of the answer: a middlebox breaking the record after the work was done.
- ``alert``: forward, then send a fatal TLS alert (plaintext record) instead of the answer.
- ``bare_503``: forward, then answer a bare ``503 Service Unavailable`` (text, no provider envelope): a gateway
  failing after it passed the request on.

``forwarded`` counts requests that reached the upstream; ``connections`` counts accepted connections.
Use the ``tls_proxy`` fixture (import it into the test module) or ``TLSProxy(upstream).start()``.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

FAULTS = ("pass", "handshake_close", "break_record", "alert", "bare_503")
#: hop-by-hop headers the proxy does not relay
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade"}


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate (``localhost`` and ``127.0.0.1``) and its key: one a verifying client refuses."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _read_request(conn: ssl.SSLSocket) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """One HTTP/1.1 request with a Content-Length body (what ApiClient sends)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("client closed before sending a request")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
    length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("client closed mid-body")
        body += chunk
    return method, target, headers, body


class TLSProxy:
    """See the module docstring. ``url`` is ``https://127.0.0.1:<port>``; clients must not verify (self-signed)."""

    def __init__(self, upstream: str, cert_dir: Path | None = None) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        folder = cert_dir or Path(tempfile.mkdtemp(prefix="tls-proxy-"))
        cert, key = self_signed(folder)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.cert = cert
        self._plan: list[str] = []
        self._lock = threading.Lock()
        self.connections = 0
        self.forwarded = 0
        self.applied: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, name="tls-proxy", daemon=True)
        self._closed = threading.Event()

    # -- test API ----------------------------------------------------------------------------------
    def plan(self, *faults: str) -> None:
        """Misbehave on the next connections, one fault each, in this order; then pass again."""
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown proxy faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
        with self._lock:
            self._plan.extend(faults)

    def reset(self) -> None:
        with self._lock:
            self._plan.clear()
            self.applied.clear()
            self.connections = self.forwarded = 0

    def start(self) -> TLSProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closed.set()
        self._listener.close()
        self._thread.join(timeout=10)

    # -- serving -----------------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            with self._lock:
                fault = self._plan.pop(0) if self._plan else "pass"
                self.connections += 1
                self.applied.append(fault)
            threading.Thread(target=self._handle, args=(raw, fault), daemon=True).start()

    def _handle(self, raw: socket.socket, fault: str) -> None:
        raw.settimeout(30)
        try:
            if fault == "handshake_close":
                raw.recv(4096)  # the ClientHello
                return
            with self.context.wrap_socket(raw, server_side=True) as conn:
                method, target, headers, body = _read_request(conn)
                status, reason, answer_headers, answer = self._forward(method, target, headers, body)
                if fault in ("break_record", "alert"):
                    record = (b"\x17\x03\x03\x00\x20" + os.urandom(32) if fault == "break_record"
                              else b"\x15\x03\x03\x00\x02\x02\x14")  # fatal bad_record_mac, unencrypted
                    with socket.socket(fileno=os.dup(conn.fileno())) as under:
                        under.sendall(record)
                        under.shutdown(socket.SHUT_RDWR)
                    return
                if fault == "bare_503":
                    status, reason, answer_headers = 503, "Service Unavailable", [("Content-Type", "text/plain")]
                    answer = b"upstream connect error or disconnect/reset before headers"
                head = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in answer_headers
                                                         if k.lower() not in _HOP),
                        f"Content-Length: {len(answer)}", "Connection: close"]
                conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + answer)
        except (OSError, ValueError):
            pass  # the client went away, or a handshake the client aborted: nothing to relay
        finally:
            raw.close()

    def _forward(self, method: str, target: str, headers: list[tuple[str, str]],
                 body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        upstream = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for key, value in headers:
                if key.lower() not in _HOP:
                    upstream.putheader(key, value)
            upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            with self._lock:
                self.forwarded += 1
            resp = upstream.getresponse()
            return resp.status, resp.reason, resp.getheaders(), resp.read()
        finally:
            upstream.close()


@pytest.fixture(scope="session")
def tls_proxy_server(emulator, tmp_path_factory) -> Iterator[TLSProxy]:
    proxy = TLSProxy(emulator.url, tmp_path_factory.mktemp("tls-proxy")).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def tls_proxy(tls_proxy_server, emu) -> Iterator[TLSProxy]:
    """The TLS proxy in front of the (reset) emulator, no faults planned."""
    tls_proxy_server.reset()
    yield tls_proxy_server
    tls_proxy_server.reset()
