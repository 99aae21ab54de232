"""Everything the emulator remembers between requests, in one object a test can reset."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .blobs import BlobStore
from .faults import FaultPlan
from .jobs import Job
from .ratelimit import RateLimiter

# per_connection_rate: bytes/s cap on every blob body (0 = off), like a CDN's per-flow limit
DEFAULT_CONFIG: dict[str, Any] = {
    "stage_seconds": 2.0, "polls_per_stage": 0, "url_ttl_seconds": 3600, "per_connection_rate": 0,
}

# One key per process: URLs signed before a restart stop working, like a rotated storage key.
_SIGNING_KEY = secrets.token_bytes(32)


class EmulatorState:
    def __init__(self, **config_overrides: Any) -> None:
        """``config_overrides`` become the baseline that ``reset()`` returns to."""
        self._baseline = {**DEFAULT_CONFIG, **config_overrides}
        self.blobs = BlobStore()
        self.faults = FaultPlan()
        self.rates = RateLimiter()
        self._seeders: list[Callable[[EmulatorState], None]] = []
        self.reset()

    def add_seeder(self, seed: Callable[[EmulatorState], None]) -> None:
        """A provider's fixed records (the demo's finished jobs): created now and again after every reset."""
        self._seeders.append(seed)
        seed(self)

    def reset(self) -> None:
        self.config: dict[str, Any] = dict(self._baseline)
        self.faults.clear()
        self.rates.clear()
        self.blobs.clear()
        self.jobs: defaultdict[str, dict[str, Job]] = defaultdict(dict)
        self.scenarios: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.requests: list[dict[str, Any]] = []
        for seed in self._seeders:
            seed(self)

    def next_scenario(self, provider: str) -> dict[str, Any]:
        """The oldest scenario a test pushed for ``provider`` (consumed), or {} for the happy path."""
        queue = self.scenarios[provider]
        return queue.pop(0) if queue else {}

    def add_job(self, provider: str, job: Job) -> Job:
        self.jobs[provider][job.job_id] = job
        return job

    def signed_url(self, base_url: str, blob_id: str, ttl: float | None = None) -> str:
        """An object-storage style URL for a blob, valid ``ttl`` seconds (default ``url_ttl_seconds``)."""
        blob = self.blobs.get(blob_id)
        if blob is None:
            raise KeyError(blob_id)
        ttl = self.config["url_ttl_seconds"] if ttl is None else ttl
        expires = int(time.time() + ttl)
        signature = _sign(blob_id, blob.filename, expires)
        return f"{base_url}/blobs/{blob_id}/{quote(blob.filename)}?Expires={expires}&Signature={signature}"

    @staticmethod
    def check_signature(blob_id: str, filename: str, expires: str | None, signature: str | None) -> str | None:
        """None if the URL is valid, else the object-storage error message to answer with."""
        if not expires or not signature or not expires.isdigit():
            return "Invalid signature"
        if not hmac.compare_digest(_sign(blob_id, filename, int(expires)), signature):
            return "Invalid signature"
        if int(expires) < time.time():
            return "Request has expired"
        return None


def _sign(blob_id: str, filename: str, expires: int) -> str:
    return hmac.new(_SIGNING_KEY, f"{blob_id}/{filename}\n{expires}".encode(), hashlib.sha256).hexdigest()


STATE = web.AppKey("state", EmulatorState)
