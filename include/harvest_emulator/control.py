"""A tiny blocking client for the control API, for tests and benchmarks."""

from __future__ import annotations

from typing import Any

import requests


class EmulatorControl:
    def __init__(self, base_url: str, timeout: float = 120.0) -> None:
        """``timeout`` is generous because creating a multi-GiB blob computes its md5 and sha256."""
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._session.request(method, f"{self.base_url}/_emulator{path}", timeout=self.timeout, **kwargs)
        response.raise_for_status()
        return response.json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def reset(self) -> None:
        self._call("POST", "/reset")

    def configure(self, **config: Any) -> dict[str, Any]:
        return self._call("PUT", "/config", json=config)

    def config(self) -> dict[str, Any]:
        return self._call("GET", "/config")

    def add_fault(self, route: str, kind: str = "status", **options: Any) -> str:
        return self._call("POST", "/faults", json={"route": route, "kind": kind, **options})["ids"][0]

    def faults(self) -> dict[str, Any]:
        """``{"faults": [active...], "applied": [{id, kind, method, path}...]}``."""
        return self._call("GET", "/faults")

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def push_scenario(self, provider: str, **scenario: Any) -> None:
        self._call("POST", f"/scenarios/{provider}", json=scenario)

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "/requests", params={"path": path} if path else None)

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def rates(self) -> dict[str, Any]:
        """Per-account counts: ``{"accounts": {"minimax:<hash>": {accepted, refused, per_second,
        max_per_second, routes, connections}}, "connections": n}`` (see ``ratelimit``)."""
        return self._call("GET", "/rates")

    def clear_rates(self) -> None:
        self._call("DELETE", "/rates")

    def create_blob(self, size: int, filename: str = "artifact.bin", seed: int | None = None) -> dict[str, Any]:
        """``{blob_id, size, filename, seed, md5, sha256, url}``; url is signed with the configured TTL."""
        body: dict[str, Any] = {"size": size, "filename": filename}
        if seed is not None:
            body["seed"] = seed
        return self._call("POST", "/blobs", json=body)

    def blob(self, blob_id: str) -> dict[str, Any]:
        """``{blob_id, size, filename, seed, etag, md5, sha256}`` of what the blob serves now."""
        return self._call("GET", f"/blobs/{blob_id}")

    def jobs(self, provider: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/jobs/{provider}")
