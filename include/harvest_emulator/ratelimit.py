"""Per-account rate limits, answered the way each provider answers them, and the counts a test asserts on.

Configured through the control API: ``configure(rate_limits={"minimax": {"rps": 10}, "flighthub2": [...]})``.
Each provider maps to one rule or a list of rules; a rule is ``{"rps": n}`` or ``{"limit": n, "window": s}``
(``rpm`` = limit per 60 s), optionally ``route`` (a regex searched in the path; default every route). A
request is refused when any matching rule already accepted ``limit`` requests of the same account in the
last ``window`` seconds (a sliding window, so no aligned second can pass the limit either). Refused
requests do not use up the window.

The account is what the request carries: FlightHub 2's ``X-User-Token``, MiniMax's ``Bearer`` key, Qianfan's
access key from the bce-auth-v1 string. It is recorded as a short hash (the counts never hold a secret).

Counts (``GET /_emulator/rates``): per account, requests that arrived per wall-clock second (``per_second``,
refused ones included), ``accepted`` / ``refused`` totals, the same per route, and ``connections``: TCP
connections accepted by the server (distinct client address and port) per account and in total.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from typing import Any

from aiohttp import web

#: each provider's own rate-limit answer: (HTTP status, JSON body)
ANSWERS: dict[str, tuple[int, dict[str, Any]]] = {
    "flighthub2": (200, {"code": 210429, "message": "Operations too frequent", "data": None}),
    "minimax": (200, {"base_resp": {"status_code": 1002, "status_msg": "rate limit exceeded"}}),
    # Qianfan documents no console-API throttling code; BCE gateways answer HTTP 429 with their error body
    "qianfan": (429, {"code": "RequestRateLimitExceeded", "message": "Request rate limit exceeded"}),
}


def account_of(headers: Any) -> tuple[str, str] | None:
    """``(provider, account hash)`` from the request's credentials, or None (blob downloads, no credentials)."""
    token = headers.get("X-User-Token")
    auth = headers.get("Authorization", "")
    if token:
        provider, secret = "flighthub2", token
    elif auth.startswith("bce-auth-v1/"):
        provider, secret = "qianfan", auth.split("/")[1]
    elif auth.startswith("Bearer "):
        provider, secret = "minimax", auth[7:].strip()
    else:
        return None
    return provider, hashlib.sha256(secret.encode()).hexdigest()[:12]


def _rules(config: Any) -> list[dict[str, Any]]:
    rules = config if isinstance(config, list) else [config] if config else []
    out = []
    for rule in rules:
        if "rps" in rule:
            limit, window = float(rule["rps"]), 1.0
        elif "rpm" in rule:
            limit, window = float(rule["rpm"]), 60.0
        else:
            limit, window = float(rule["limit"]), float(rule.get("window", 1.0))
        out.append({"limit": limit, "window": window, "route": rule.get("route")})
    return out


class RateLimiter:
    """Sliding-window limits per (account, rule), and per-second / per-route counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._accepted: defaultdict[tuple, deque[float]] = defaultdict(deque)
            self._counts: dict[str, dict[str, Any]] = {}
            self._peers: defaultdict[str, set[str]] = defaultdict(set)

    def _account(self, key: str) -> dict[str, Any]:
        return self._counts.setdefault(key, {
            "accepted": 0, "refused": 0, "per_second": defaultdict(int), "routes": {},
        })

    def admit(self, limits: dict[str, Any], provider: str, account: str, path: str, peer: str) -> bool:
        """Count one request; False when a rule of ``limits[provider]`` refuses it."""
        now = time.time()
        key = f"{provider}:{account}"
        with self._lock:
            self._peers[key].add(peer)
            self._peers["*"].add(peer)
            counts = self._account(key)
            counts["per_second"][int(now)] += 1
            route = counts["routes"].setdefault(path, {"accepted": 0, "refused": 0})
            windows = []
            for index, rule in enumerate(_rules(limits.get(provider))):
                if rule["route"] and not re.search(rule["route"], path):
                    continue
                window = self._accepted[(key, index)]
                while window and window[0] <= now - rule["window"]:
                    window.popleft()
                if len(window) >= rule["limit"]:
                    counts["refused"] += 1
                    route["refused"] += 1
                    return False
                windows.append(window)
            for window in windows:
                window.append(now)
            counts["accepted"] += 1
            route["accepted"] += 1
            return True

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            accounts = {}
            for key, counts in self._counts.items():
                per_second = {str(s): n for s, n in sorted(counts["per_second"].items())}
                accounts[key] = {
                    "accepted": counts["accepted"], "refused": counts["refused"], "per_second": per_second,
                    "max_per_second": max(per_second.values(), default=0),
                    "routes": {path: dict(c) for path, c in counts["routes"].items()},
                    "connections": len(self._peers[key]),
                }
            return {"accounts": accounts, "connections": len(self._peers["*"])}


def refusal(provider: str) -> web.Response:
    status, body = ANSWERS[provider]
    if provider == "qianfan":
        body = {"requestId": str(uuid.uuid4()), **body}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")
