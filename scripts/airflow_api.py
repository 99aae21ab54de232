"""A small client for Airflow 3.3's REST API, as a user would drive it: JWT login, unpause, trigger, wait.

Shared by ``make demo`` and the distributed test, so both exercise the API server the same way.
"""

from __future__ import annotations

import time
from typing import Any

import requests

TERMINAL_RUN_STATES = {"success", "failed"}


class AirflowApi:
    def __init__(self, base_url: str, username: str = "admin", password: str = "admin") -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self._session = requests.Session()
        self._session.trust_env = False
        self._token: str | None = None

    # -- plumbing ----------------------------------------------------------------------------------
    def _login(self) -> str:
        resp = self._session.post(
            f"{self.base_url}/auth/token", json={"username": self.username, "password": self.password}, timeout=30
        )
        resp.raise_for_status()
        return resp.json()["access_token"]

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        if self._token is None:
            self._token = self._login()
        kwargs.setdefault("timeout", 30)
        extra_headers = kwargs.pop("headers", {})
        for attempt in (1, 2):
            headers = {**extra_headers, "Authorization": f"Bearer {self._token}"}
            resp = self._session.request(method, f"{self.base_url}{path}", headers=headers, **kwargs)
            if resp.status_code != 401 or attempt == 2:
                return resp
            self._token = self._login()  # token expired: log in again once
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.request(method, path, **kwargs)
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> HTTP {resp.status_code}: {resp.text[:500]}")
        return resp.json() if resp.content else None

    # -- health ------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        resp = self._session.get(f"{self.base_url}/api/v2/monitor/health", timeout=10)
        resp.raise_for_status()
        return resp.json()

    def wait_healthy(self, timeout: float = 120, components: tuple[str, ...] = ("metadatabase", "scheduler")) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.health()
                if all(last.get(c, {}).get("status") == "healthy" for c in components):
                    return
            except requests.RequestException as exc:
                last = exc
            time.sleep(0.5)
        raise TimeoutError(f"API server at {self.base_url} not healthy after {timeout}s: {last}")

    # -- DAGs and runs -----------------------------------------------------------------------------
    def dags(self, tags: list[str] | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": 100}
        if tags:
            params["tags"] = tags
        return self.json("GET", "/api/v2/dags", params=params)["dags"]

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 120) -> None:
        """DAG files are parsed by the dag-processor: wait until every one is known to the API."""
        deadline = time.monotonic() + timeout
        missing = set(dag_ids)
        while time.monotonic() < deadline:
            missing = {d for d in dag_ids if self.request("GET", f"/api/v2/dags/{d}").status_code != 200}
            if not missing:
                return
            time.sleep(1)
        raise TimeoutError(f"DAGs not parsed after {timeout}s: {sorted(missing)}")

    def unpause(self, dag_id: str) -> None:
        self.json("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: str | None = None) -> str:
        body = {"logical_date": logical_date, "conf": conf or {}}
        return self.json("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.json("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def backfill(self, dag_id: str, from_date: str, to_date: str, reprocess_behavior: str = "none") -> int:
        """What ``airflow backfill create`` does: the scheduler then creates and runs one run per interval."""
        body = {"dag_id": dag_id, "from_date": from_date, "to_date": to_date,
                "reprocess_behavior": reprocess_behavior, "max_active_runs": 2}
        return self.json("POST", "/api/v2/backfills", json=body)["id"]

    def backfill_completed(self, backfill_id: int) -> bool:
        """The scheduler marks a backfill complete a loop after its last run ends."""
        return self.json("GET", f"/api/v2/backfills/{backfill_id}").get("completed_at") is not None

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        state = "unknown"
        while time.monotonic() < deadline:
            state = self.run(dag_id, run_id)["state"]
            if state in TERMINAL_RUN_STATES:
                return state
            time.sleep(1)
        raise TimeoutError(f"{dag_id}/{run_id} still {state} after {timeout}s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})[
            "task_instances"
        ]

    def xcom_entries(self, dag_id: str, run_id: str, task_id: str = "~") -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries"
        return self.json("GET", path, params={"limit": 1000})["xcom_entries"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        resp = self.request("GET", path, params={"map_index": map_index, "full_content": True},
                            headers={"Accept": "text/plain"})
        return resp.text
