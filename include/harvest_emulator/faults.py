"""The fault plan: misbehaviour a test switches on over HTTP, without restarting the server.

A fault is a dict: ``route`` (regex searched in the request path, required), ``method`` (optional),
``query`` (optional regex searched in the query string, e.g. ``Action=Create``; middleware kinds only),
``range`` (optional regex searched in the request's Range header: one range's connection of a parallel
download), ``kind``, ``times`` (default 1, -1 = forever) and the kind's options:

Applied by the middleware, before the handler (any route except the control API):
- ``status``: answer ``status`` (default 503), optional ``retry_after`` seconds header, optional JSON ``body``.
- ``envelope``: answer JSON ``body`` with ``status`` (default 200), i.e. a provider's error envelope.
- ``hang``: sleep ``seconds`` (default 30), then answer normally.
- ``drop_answer``: run the handler (the request IS processed: a job is created), wait ``seconds`` (default 0),
  then close the connection without answering: a lost answer.

Applied by ``serving.serve_blob`` (signed blob route and providers' download routes):
- ``drop``: close the connection after ``after_bytes`` body bytes (default half the body).
- ``slow``: throttle the body to ``rate`` bytes/s.
- ``expire``: 403 "Request has expired" even for a valid signature.
- ``corrupt``: flip the byte at blob ``offset`` (default the middle; the first byte served if outside the
  range served), so the size is right and the checksum wrong.
- ``ignore_range``: answer 200 with the full body even when Range was sent.
- ``rebuild``: counted once per body served; after the ``times``-th one (whole or cut short) the file gets
  new bytes, a new ETag and Last-Modified at the same URL and size (a provider regenerating the file).

Each application decrements ``times``; exhausted faults disappear but stay counted in ``applied``.
"""

from __future__ import annotations

import itertools
import re
import threading
from typing import Any

MIDDLEWARE_KINDS = ("status", "envelope", "hang", "drop_answer")
BLOB_KINDS = ("drop", "slow", "expire", "corrupt", "ignore_range", "rebuild")
KINDS = MIDDLEWARE_KINDS + BLOB_KINDS


class FaultPlan:
    def __init__(self) -> None:
        self._faults: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.applied: list[dict[str, Any]] = []

    def add(self, fault: dict[str, Any]) -> str:
        """Validate and register one fault; returns its id."""
        fault = dict(fault)
        if not isinstance(fault.get("route"), str):
            raise ValueError("a fault needs a 'route' regex")
        re.compile(fault["route"])
        fault.setdefault("kind", "status")
        if fault["kind"] not in KINDS:
            raise ValueError(f"unknown fault kind {fault['kind']!r}; known: {', '.join(KINDS)}")
        fault.setdefault("times", 1)
        with self._lock:
            fault["id"] = f"f{next(self._ids)}"
            self._faults.append(fault)
        return fault["id"]

    def take(
        self, path: str, method: str, kinds: tuple[str, ...] | str, query: str = "", headers: Any = None
    ) -> dict[str, Any] | None:
        """Consume one application of the first matching fault of one of ``kinds``, or None."""
        kinds = (kinds,) if isinstance(kinds, str) else kinds
        range_header = (headers or {}).get("Range") or ""
        with self._lock:
            for fault in self._faults:
                if fault["kind"] not in kinds or not re.search(fault["route"], path):
                    continue
                if fault.get("method") and fault["method"].upper() != method.upper():
                    continue
                if fault.get("query") and not re.search(fault["query"], query):
                    continue
                if fault.get("range") and not re.search(fault["range"], range_header):
                    continue
                if fault["times"] > 0:
                    fault["times"] -= 1
                    if fault["times"] == 0:
                        self._faults.remove(fault)
                self.applied.append({"id": fault["id"], "kind": fault["kind"], "method": method, "path": path})
                return dict(fault)
        return None

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(f) for f in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.applied.clear()
