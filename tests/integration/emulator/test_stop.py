"""EmulatorServer.stop() returns within seconds whatever its clients hold open: an idle keep-alive
connection, a long poll (a ``hang`` fault), a large body read halfway, a throttled body and a request whose
header never ends. Real sockets against a server of the test's own (the session's emulator is left alone)."""

from __future__ import annotations

import socket
import threading
import time

import requests

from harvest_emulator.server import EmulatorServer

MiB = 1 << 20


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_stop_returns_within_seconds_with_connections_open():
    server = EmulatorServer(host="127.0.0.1", port=0).start()
    url, port = server.url, server.port
    big = server.control.create_blob(48 * MiB, "big.bin")
    slow = server.control.create_blob(MiB, "slow.bin")
    server.control.add_fault(f"/blobs/{slow['blob_id']}/", kind="slow", rate=2000, times=-1)
    server.control.add_fault("^/long-poll$", kind="hang", seconds=600)
    held: list = []

    keep_alive = requests.Session()
    assert keep_alive.get(f"{url}/_emulator/health", timeout=10).ok  # the connection stays in the pool, idle
    half_read = requests.get(big["url"], stream=True, timeout=30)
    assert len(half_read.raw.read(64 * 1024)) == 64 * 1024  # then stops reading: the server blocks on drain
    throttled = requests.get(slow["url"], stream=True, timeout=30)
    assert throttled.raw.read(100)
    half_header = socket.create_connection(("127.0.0.1", port))
    half_header.sendall(b"GET /_emulator/health HTTP/1.1\r\nHost: x\r\n")  # never finished
    outcome: list = []

    def long_poll() -> None:
        try:
            outcome.append(requests.get(f"{url}/long-poll", timeout=120).status_code)
        except requests.RequestException as exc:
            outcome.append(type(exc).__name__)

    poller = threading.Thread(target=long_poll, daemon=True)
    poller.start()
    wait_for(lambda: any(r["path"] == "/long-poll" for r in server.state.requests), 10, "the long poll to arrive")
    held.extend([keep_alive, half_read, throttled, half_header])

    began = time.monotonic()
    stopper = threading.Thread(target=server.stop, daemon=True)
    stopper.start()
    stopper.join(timeout=15)
    elapsed = time.monotonic() - began
    try:
        assert not stopper.is_alive(), "stop() still running after 15 s"
        assert elapsed < 5, f"stop() took {elapsed:.1f} s"
        poller.join(timeout=10)
        assert outcome and outcome[0] != 200, outcome  # the long poll was cut, not answered after 600 s
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            listening = True
        except OSError:
            listening = False
        assert not listening, "the port still accepts connections"
    finally:
        for thing in held:
            thing.close()
