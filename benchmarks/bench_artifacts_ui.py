"""``make bench``: the Artifacts page's list endpoint over 10,000 archived artifacts, against a seeded metadata DB.

A fresh AIRFLOW_HOME with a migrated SQLite metadata DB is seeded with 10,000 Asset events (the index: each
extra is a manifest; plus 1,000 ``already_archived`` repeats of re-runs, which the list skips) over 3 provider
assets and 5 DAGs, and the same 10,000 manifests are written to a local archive folder. Requests go through
Airflow's own API server app (``create_app()``, the plugin from the entry point, a real JWT through
SimpleAuthManager) with FastAPI's TestClient, in this process.

Measured per case: the median and worst of REPEAT requests (first page, last page, provider filter, text
search, date range, one run, the usage summary over all 10,000, detail). Baseline in the same run: what listing would cost by walking the store
(read every manifest, sort newest first, slice one page), the approach the index avoids.

Target: every listed page under 1 s (worst of REPEAT). Exit code 1 when missed.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.airflow_home import project_airflow_env  # noqa: E402

N = 10_000
REPEATS_OF_RERUNS = 1_000
REPEAT = 15
TARGET_S = 1.0
PROVIDERS = ("flighthub2", "minimax", "qianfan")
DAGS = ("flighthub2_reconstruct_model", "flighthub2_archive_project_models", "minimax_generate_video",
        "minimax_archive_new_files", "qianfan_export_model")

HOME = Path(tempfile.mkdtemp(prefix="bench-artifacts-ui-"))
ARCHIVE = HOME / "archive"
os.environ.update({
    **project_airflow_env(HOME / "airflow"),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME}/airflow.db",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
    "AIRFLOW_VAR_ARTIFACT_ARCHIVE_ROOT": str(ARCHIVE),
})
os.environ.pop("AIRFLOW_CONFIG", None)
(HOME / "airflow" / "simple_auth_manager_passwords.json.generated").write_text(
    json.dumps({"admin": "admin", "viewer": "viewer"}))  # known throwaway logins: nothing generated or printed


def manifest(i: int, at: datetime) -> dict:
    provider, dag_id = PROVIDERS[i % 3], DAGS[i % 5]
    return {
        "provider": provider, "artifact_key": f"key-{i:06d}", "filename": f"artifact-{i:06d}.zip",
        "size_bytes": 1_000_000 + i, "sha256": f"{i:064x}", "md5": f"{i:032x}", "source": {"id": i},
        "archived_at": at.isoformat(timespec="seconds"), "dag_id": dag_id, "run_id": f"run-{i // 4:05d}",
        "extra": {}, "path": f"file://{ARCHIVE}/{provider}/key-{i:06d}/artifact-{i:06d}.zip",
        **({} if i % 2 else {"usage": {  # every other one written before usage was recorded: unknown
            "characters": {"value": i, "unit": "characters", "source": "provider"},  # distinct: no two alike
            "resolution": {"value": "1366x768", "unit": "px", "source": "provider"}}}),
    }


def seed() -> list[dict]:
    from sqlalchemy import insert, select

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session

    from artifact_harvest.core.assets import asset_for

    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    manifests = [manifest(i, start + timedelta(minutes=i)) for i in range(N)]
    with create_session() as session:
        session.add(DagBundleModel(name="dags-folder"))
        session.flush()
        for dag_id in DAGS:
            session.add(DagModel(dag_id=dag_id, bundle_name="dags-folder", fileloc=f"/dags/{dag_id}.py"))
        for provider in PROVIDERS:
            asset = asset_for(provider)
            session.add(AssetModel(name=asset.name, uri=asset.uri, group="asset", extra={}))
        session.flush()
        ids = dict(session.execute(select(AssetModel.uri, AssetModel.id)).all())
        rows = [{"asset_id": ids[f"x-artifact-harvest://{m['provider']}"], "extra": m, "source_dag_id": m["dag_id"],
                 "source_run_id": m["run_id"], "source_task_id": "download_and_archive", "source_map_index": -1,
                 "timestamp": datetime.fromisoformat(m["archived_at"])} for m in manifests]
        rows += [{**rows[i], "extra": {**manifests[i], "already_archived": True},
                  "timestamp": rows[i]["timestamp"] + timedelta(days=400)} for i in range(0, N, N // REPEATS_OF_RERUNS)]
        session.execute(insert(AssetEvent), rows)
    for m in manifests:
        folder = ARCHIVE / m["provider"] / m["artifact_key"]
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps(m, indent=2, sort_keys=True))
    return manifests


def walk_store_page(offset: int, limit: int = 50) -> list[dict]:
    """The baseline: one page by reading every manifest in the store."""
    found = [json.loads(p.read_text()) for p in ARCHIVE.glob("*/*/manifest.json")]
    found.sort(key=lambda m: m["archived_at"], reverse=True)
    return found[offset:offset + limit]


def timed(fn, repeat: int = REPEAT) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), max(times)


def main() -> int:
    import logging

    logging.getLogger("http.access").setLevel(logging.WARNING)  # one line per request would dominate here
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True,
                   env=os.environ.copy(), timeout=600)
    t0 = time.perf_counter()
    manifests = seed()
    print(f"seeded {N:,} artifacts (+{REPEATS_OF_RERUNS:,} re-run events) in {time.perf_counter() - t0:.1f}s; "
          f"home {HOME}")

    from fastapi.testclient import TestClient

    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    app = create_app()
    clients = {role: TestClient(app, headers={"Authorization": "Bearer " + get_auth_manager().generate_jwt(
        SimpleAuthManagerUser(username=role, role=role))}) for role in ("admin", "viewer")}

    def listing(client, **params):
        def call():
            resp = client.get("/artifacts/api/artifacts", params={"limit": 50, **params})
            assert resp.status_code == 200, resp.text
            return resp.json()
        return call

    newest = manifests[-1]
    assert listing(clients["admin"])()["total"] == N
    assert listing(clients["admin"])()["artifacts"][0]["artifact_key"] == newest["artifact_key"]
    usage = clients["admin"].get("/artifacts/api/usage").json()
    assert (usage["artifacts"], usage["unknown"]) == (N, N // 2)
    cases = {
        "first page (admin)": listing(clients["admin"]),
        "first page (viewer)": listing(clients["viewer"]),
        "last page": listing(clients["admin"], offset=N - 50),
        "provider filter": listing(clients["admin"], provider="minimax"),
        "text search": listing(clients["admin"], q="artifact-0099"),
        "date range": listing(clients["admin"], since="2026-01-02T00:00:00Z", until="2026-01-03T00:00:00Z"),
        "one run": listing(clients["admin"], dag_id=newest["dag_id"], run_id=newest["run_id"]),
        "usage summary": lambda: clients["admin"].get("/artifacts/api/usage"),
        "detail": lambda: clients["admin"].get(f"/artifacts/api/artifacts/{newest['provider']}/{newest['artifact_key']}"),
    }
    results = {name: timed(fn) for name, fn in cases.items()}
    walk = timed(lambda: walk_store_page(0), repeat=3)

    print(f"\n{'case':<22}{'median ms':>11}{'worst ms':>10}{'store walk / index':>20}")
    for name, (median, worst) in results.items():
        print(f"{name:<22}{median * 1000:>11.1f}{worst * 1000:>10.1f}{walk[0] / median:>19.0f}x")
    print(f"{'store walk, 1 page':<22}{walk[0] * 1000:>11.1f}{walk[1] * 1000:>10.1f}{'1x':>20}")
    listed = {k: v for k, v in results.items() if k != "detail"}
    worst_name, (_, worst) = max(listed.items(), key=lambda kv: kv[1][1])
    ok = worst < TARGET_S
    print(f"\n{N:,} artifacts: worst page {worst * 1000:.0f} ms ({worst_name}); target < {TARGET_S * 1000:.0f} ms: "
          f"{'met' if ok else 'MISSED'}  (SQLite, TestClient in-process, other work may share the machine)")
    return 0 if ok else 1


if __name__ == "__main__":
    import shutil

    try:
        code = main()
    finally:
        shutil.rmtree(HOME, ignore_errors=True)
    sys.exit(code)
