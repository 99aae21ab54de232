"""Two runs of the same Qianfan export at once, in separate processes with their own metadata DBs, sharing
staging and archive (two workers): one writer per key (the archive lease), so one verified copy whose
manifest is its bytes, and no lease left behind."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from artifact_harvest.qianfan.hook import QianfanHook

from scripts.airflow_home import project_airflow_env

ROOT = Path(__file__).resolve().parents[2]
MODEL = "amv-twoworkers"
SIZE = 8 << 20
RATE = 1 << 20  # per connection: the download takes ~8 s, so the second run arrives while the first fetches

RUN = """
import json, sys
sys.path.insert(0, {root!r})
from tests.support import dag_test_with_deadlines, load_dag, task_states
with dag_test_with_deadlines():  # apache/airflow#73428, as in the airflow_db fixture
    run = load_dag("qianfan_export_model").test(run_conf={conf!r})
print("RESULT " + json.dumps({{"state": run.state, "tasks": task_states(run)}}))
"""


def start_run(airflow_db: Path, home: Path) -> tuple[subprocess.Popen, Path]:
    """``dag.test()`` in a process of its own, on a copy of the migrated SQLite DB (its own metadata).

    Its output goes to a file: a pipe nobody reads yet would block a run that holds the lock, and the other
    would wait for that lock forever."""
    env = {**os.environ, **project_airflow_env(home)}
    shutil.copy(airflow_db / "airflow.db", home / "airflow.db")
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home}/airflow.db"
    for name, value in (("LEASE_RENEW_INTERVAL", "0.5"), ("LEASE_EXPIRY", "5"), ("LEASE_POLL_INTERVAL", "0.5")):
        env[f"AIRFLOW__ARTIFACT_HARVEST__{name}"] = value  # the waiter sees the archive soon after it lands
    conf = {"model_version_id": MODEL, "poll_interval": 0.05, "timeout": "PT2M"}
    code = RUN.format(root=str(ROOT), conf=conf)
    output = home / "output.log"
    with open(output, "w") as out:
        return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=subprocess.STDOUT), output


def test_two_concurrent_runs_of_one_export_leave_one_verified_copy(
    airflow_db, emu, archive_root, staging_dir, tmp_path
):
    emu.control.push_scenario("qianfan", size=SIZE)
    export_id = QianfanHook().create_export(MODEL)  # both runs attach to this export: the same key
    emu.control.configure(per_connection_rate=RATE)

    runs = [start_run(airflow_db, tmp_path / f"worker-{i}") for i in (1, 2)]
    for run, _ in runs:
        run.wait(timeout=240)
    outputs = [output.read_text() for _, output in runs]

    results = [json.loads(line.split("RESULT ", 1)[1]) for out in outputs for line in out.splitlines()
               if line.startswith("RESULT ")]
    assert [r["state"] for r in results] == ["success", "success"], "\n".join(o[-3000:] for o in outputs)
    logs = "\n".join(outputs)
    assert "waiting for its archive lease" in logs  # they did overlap: the second waited on the lease
    assert "is already archived" in logs  # the second found the first's copy and did nothing
    served = requests_for_blob(emu)
    assert len(served) == 1 and "Range" not in served[0]["headers"]  # fetched once, never interleaved

    folder = archive_root / "qianfan" / export_id
    manifest = json.loads((folder / "manifest.json").read_text())
    data = (folder / manifest["filename"]).read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == sorted(["manifest.json", manifest["filename"]])  # no lease
    export = QianfanHook().describe_export(MODEL)
    assert manifest["size_bytes"] == len(data) == export.file_size
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["md5"] == hashlib.md5(data).hexdigest() == export.md5
    assert [p.name for p in (staging_dir / export_id).iterdir()] == [".lock"]  # nothing half-written left

    # each run's own metadata DB holds its Asset event: one names the artifact, the other says already_archived
    events = [event for i in (1, 2) for event in asset_events(tmp_path / f"worker-{i}" / "airflow.db")
              if event.get("artifact_key") == export_id]  # the DB copies may hold earlier tests' events
    assert sorted(bool(e.get("already_archived")) for e in events) == [False, True], events
    assert {e["sha256"] for e in events} == {manifest["sha256"]}


def asset_events(db: Path) -> list[dict]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return [json.loads(extra) for (extra,) in conn.execute("SELECT extra FROM asset_event")]


def requests_for_blob(emu) -> list[dict]:
    return [r for r in emu.control.requests(path="^/blobs/") if r["method"] == "GET"]
