"""A real HTTP server on 127.0.0.1 that records every POST (path, query, JSON body) and answers with the statuses a
test plans (then 204): the far end of ``[artifact_harvest] deadline_webhook_url``.

``wait_for(predicate, timeout)`` blocks on a condition variable until a recorded request matches: no sleeps.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Received:
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int


class WebhookReceiver:
    """``with WebhookReceiver() as hook: hook.url("/late?token=x")``; ``hook.plan(500)`` fails the next POST."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._planned: list[int] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                with receiver._changed:
                    status = receiver._planned.pop(0) if receiver._planned else 204
                    parts = urlsplit(self.path)
                    receiver.received.append(Received(parts.path, parse_qs(parts.query), body, status))
                    receiver._changed.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # keep the test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path_and_query: str = "/") -> str:
        return self.base_url + path_and_query

    def plan(self, *statuses: int) -> None:
        """Answer the next POSTs with these statuses, in order."""
        with self._changed:
            self._planned.extend(statuses)

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float) -> Received:
        """The first recorded POST matching ``predicate``; AssertionError after ``timeout`` seconds."""
        with self._changed:
            found = self._changed.wait_for(lambda: next((r for r in self.received if predicate(r)), None), timeout)
        if found is None:
            raise AssertionError(f"no matching webhook POST within {timeout} s; got {self.received!r}")
        return found

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever(): only when it runs
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
