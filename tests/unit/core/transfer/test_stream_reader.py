"""body_reader: the stream's readinto, straight from http.client under urllib3, and what it says of a cut body.

A one-shot HTTP server on 127.0.0.1 writes the exact bytes of each case (a cut body cannot come from a
well-behaved server)."""

from __future__ import annotations

import gzip
import io
import socket
import threading
from types import SimpleNamespace

import pytest

from artifact_harvest.core.session import plain_session
from artifact_harvest.core.transfer.stream import _short_of_length, body_reader

BODY = bytes(range(256)) * 40  # 10,240 bytes


def _serve_once(response: bytes) -> str:
    """A server that answers one request with ``response`` and closes; returns its URL."""
    server = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(response)

    threading.Thread(target=answer, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}/blob"


def _read_all(url: str, size: int = 4096) -> tuple[bytes, int]:
    """The body as the stream reads it (into one reused buffer), and the bytes still owed at its end."""
    got = bytearray()
    with plain_session() as session, session.get(url, stream=True, timeout=5) as resp:
        readinto, buf = body_reader(resp), memoryview(bytearray(size))
        while n := readinto(buf):
            got += buf[:n]
        return bytes(got), _short_of_length(resp)


def test_whole_body_with_content_length():
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(BODY)}\r\n\r\n".encode()
    assert _read_all(_serve_once(head + BODY)) == (BODY, 0)


def test_body_cut_short_of_its_content_length_is_reported():
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(BODY)}\r\nConnection: close\r\n\r\n".encode()
    assert _read_all(_serve_once(head + BODY[:3000])) == (BODY[:3000], len(BODY) - 3000)


def test_chunked_body_is_read_whole():
    pieces = [BODY[i : i + 3000] for i in range(0, len(BODY), 3000)]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    assert _read_all(_serve_once(response)) == (BODY, 0)


def test_content_encoding_is_never_decoded():
    packed = gzip.compress(BODY)
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(packed)}\r\n\r\n".encode()
    assert _read_all(_serve_once(head + packed)) == (packed, 0)  # the bytes the server hashes are the bytes sent


@pytest.mark.parametrize("size", [3, 4096])
def test_without_http_client_underneath_it_reads_and_copies(size):
    body = io.BytesIO(BODY)

    def read(amt: int, decode_content: bool) -> bytes:
        assert decode_content is False
        return body.read(amt)

    readinto, buf, got = body_reader(SimpleNamespace(raw=SimpleNamespace(read=read))), memoryview(bytearray(size)), b""
    while n := readinto(buf):
        got += bytes(buf[:n])
    assert got == BODY
