"""``make demo``: every pipeline end to end against the local emulator, on SQLite and the LocalExecutor.

Starts the provider emulator and ``airflow standalone`` (scheduler, dag-processor, triggerer, API server)
in a fresh ``.demo/`` home, imports the three connections into the metadata DB (so the UI lists them and
their Test button works), triggers each provider's demo runs through the REST API with every input given as
run conf, waits for them, prints the archived artifacts and exits non-zero if any run failed.

Whatever ends the demo (the end, a failure, Ctrl-C, SIGTERM, SIGHUP) stops everything it started: nothing
stays listening. ``DEMO_KEEP=1`` keeps Airflow and the emulator running to look around in the UI;
``make demo-stop`` (``demo.py --stop``) stops them. Ports: ``DEMO_API_PORT`` (8080) and
``DEMO_EMULATOR_PORT`` (8765); the folder: ``DEMO_DIR`` (.demo).
``DEMO_ARCHIVE=s3`` archives into a bucket on moto's S3 server (started here, on 127.0.0.1) instead of
``.demo/archive``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.airflow_api import AirflowApi  # noqa: E402
from scripts.airflow_home import project_airflow_env  # noqa: E402

DEMO = Path(os.environ.get("DEMO_DIR") or ROOT / ".demo").resolve()
#: what ``--stop`` needs to find a demo left running: demo.py's pid and its components' process groups
PIDS = DEMO / "pids.json"


def demo_port(variable: str, default: int) -> int:
    """The port ``variable`` names (it must be free), else ``default``, else any free port."""
    wanted = os.environ.get(variable)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", int(wanted or default)))
            return int(wanted or default)
        except OSError:
            if wanted:
                raise SystemExit(f"{variable}={wanted}: the port is in use") from None
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Each component in its own process group, so stopping it stops its children too."""
    return subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def group_alive(pgid: int, leader: subprocess.Popen | None = None) -> bool:
    if leader is not None:
        leader.poll()  # reap our own child, else its zombie keeps the group "alive"
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_group(pgid: int, leader: subprocess.Popen | None = None, grace: float = 30) -> None:
    """SIGTERM the whole process group, then SIGKILL whatever is left of it after ``grace`` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while group_alive(pgid, leader) and time.monotonic() < deadline:
        time.sleep(0.2)
    if group_alive(pgid, leader):
        os.killpg(pgid, signal.SIGKILL)
    if leader is not None:
        leader.wait()


def stop(proc: subprocess.Popen) -> None:
    """Stop a component and every process it started (each runs in its own process group)."""
    stop_group(proc.pid, proc)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def save_pids(procs: list[subprocess.Popen]) -> None:
    PIDS.write_text(json.dumps({"demo": os.getpid(), "groups": [p.pid for p in procs]}))


def stop_running_demo() -> int:
    """``make demo-stop``: SIGTERM the demo (it stops its components); stop any component it left behind."""
    if not PIDS.exists():
        print(f"no demo running (no {PIDS})")
        return 0
    pids = json.loads(PIDS.read_text())
    try:
        os.kill(pids["demo"], signal.SIGTERM)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            os.kill(pids["demo"], 0)
            time.sleep(0.2)
    except ProcessLookupError:
        pass
    for pgid in pids["groups"]:
        stop_group(pgid, grace=10)
    PIDS.unlink(missing_ok=True)
    print("demo stopped")
    return 0


def import_connections(env: dict[str, str], emulator_url: str) -> None:
    """The demo's connections into the metadata DB, as a user would add them: visible and testable in the UI."""
    from harvest_emulator.credentials import connections

    path = DEMO / "connections.json"
    path.write_text(json.dumps(connections(emulator_url), indent=2))
    path.chmod(0o600)
    subprocess.run([sys.executable, "-m", "airflow", "connections", "import", "--overwrite", str(path)], env=env,
                   check=True, stdout=(DEMO / "connections.log").open("wb"), stderr=subprocess.STDOUT)


def wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"process exited early, see {log}:\n{log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"nothing listening on {port} after {timeout}s, see {log}")


def main() -> int:
    from harvest_emulator.app import demo_runs

    for sig in (signal.SIGTERM, signal.SIGHUP):  # Ctrl-C raises KeyboardInterrupt: cleaned up the same way
        signal.signal(sig, _exit_on_signal)
    shutil.rmtree(DEMO, ignore_errors=True)
    home, archive, staging = DEMO / "airflow", DEMO / "archive", DEMO / "staging"
    for d in (home, archive, staging):
        d.mkdir(parents=True)

    emulator_port, api_port = demo_port("DEMO_EMULATOR_PORT", 8765), demo_port("DEMO_API_PORT", 8080)
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    env = {
        **os.environ,
        # standalone starts its components as `airflow ...` subprocesses: the venv's bin must come first
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **project_airflow_env(home),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "6",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        # the task supervisor's API: standalone's default assumes port 8080
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW_VAR_ARTIFACT_ARCHIVE_ROOT": str(archive),
        "AIRFLOW_VAR_ARTIFACT_STAGING_DIR": str(staging),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",  # the connection form's Test button
    }
    for name in [n for n in env if n.startswith("AIRFLOW_CONN_")]:  # the DB's connections, not the caller's
        del env[name]
    if os.environ.get("DEMO_ARCHIVE") == "s3":
        env.update(s3_archive_env())
    env.pop("AIRFLOW_CONFIG", None)
    archive_root = env["AIRFLOW_VAR_ARTIFACT_ARCHIVE_ROOT"]
    procs: list[subprocess.Popen] = []
    try:
        print(f"emulator        {emulator_url}", flush=True)
        emu_log = DEMO / "emulator.log"
        procs.append(start([sys.executable, "-m", "harvest_emulator", "--host", "127.0.0.1",
                            "--port", str(emulator_port), "--stage-seconds", "1.5"], env, emu_log))
        save_pids(procs)
        wait_listening(emulator_port, procs[-1], emu_log)

        print("airflow         db migrate", flush=True)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                       stdout=(DEMO / "migrate.log").open("wb"), stderr=subprocess.STDOUT)
        print("airflow         connections import (Admin → Connections)", flush=True)
        import_connections(env, emulator_url)
        # parse the DAG files once now, instead of waiting for the dag-processor's first bundle scan
        subprocess.run([sys.executable, "-m", "airflow", "dags", "reserialize"], env=env, check=True,
                       stdout=(DEMO / "reserialize.log").open("wb"), stderr=subprocess.STDOUT)
        af_log = DEMO / "standalone.log"
        procs.append(start([sys.executable, "-m", "airflow", "standalone"], env, af_log))
        save_pids(procs)
        api = AirflowApi(f"http://127.0.0.1:{api_port}")
        wait_listening(api_port, procs[-1], af_log, timeout=180)
        api.wait_healthy(timeout=180, components=("metadatabase", "scheduler", "triggerer"))

        runs = demo_runs()
        api.wait_for_dags(sorted({dag_id for dag_id, _ in runs}), timeout=180)
        started = time.monotonic()
        triggered: list[tuple[str, str]] = []
        for dag_id, conf in runs:
            api.unpause(dag_id)
            run_id = api.trigger(dag_id, conf)
            triggered.append((dag_id, run_id))
            print(f"triggered       {dag_id}  {run_id}", flush=True)

        failed: list[str] = []
        durations: dict[str, float] = {}
        for dag_id, run_id in triggered:
            state = api.wait_for_run(dag_id, run_id, timeout=900)
            run = api.run(dag_id, run_id)
            durations[run_id] = _seconds(run)
            print(f"{state:<15} {dag_id}  {run_id}  ({durations[run_id]:.1f}s)", flush=True)
            if state != "success":
                failed.append(f"{dag_id}/{run_id}")

        print_table(archive_root, durations)
        print(f"\nall runs finished in {time.monotonic() - started:.1f}s")
        print(f"Airflow UI: http://127.0.0.1:{api_port}  (login admin / admin)")
        print(f"archive:    {archive_root}")
        if failed:
            print(f"FAILED runs: {', '.join(failed)}  (logs: {home / 'logs'})", file=sys.stderr)
            return 1
        if os.environ.get("DEMO_KEEP") == "1":
            print("DEMO_KEEP=1: Airflow and the emulator keep running. Stop them with `make demo-stop` "
                  f"(or Ctrl-C here, or kill {os.getpid()}).", flush=True)
            while True:
                signal.pause()
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second signal must not cut the cleanup
            signal.signal(sig, signal.SIG_IGN)
        for proc in reversed(procs):
            stop(proc)
        PIDS.unlink(missing_ok=True)


def _seconds(run: dict) -> float:
    from datetime import datetime

    start, end = run.get("start_date"), run.get("end_date")
    if not start or not end:
        return 0.0
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


_OBJECT_STORE: list = []  # DEMO_ARCHIVE=s3: the moto server, kept for reading the table back


def s3_archive_env() -> dict[str, str]:
    """DEMO_ARCHIVE=s3: moto's S3 server in this process (the demo's Airflow reaches it on 127.0.0.1) and the
    ``aws`` connection and Variables that make a bucket on it the archive root."""
    from harvest_emulator.credentials import archive_s3_env
    from harvest_emulator.object_store import ARCHIVE_BUCKET, ObjectStore

    store = ObjectStore().start()
    store.create_bucket(ARCHIVE_BUCKET)
    _OBJECT_STORE.append(store)
    print(f"object store    {store.url}  (moto, bucket {ARCHIVE_BUCKET})", flush=True)
    return archive_s3_env(store.url, f"s3://{ARCHIVE_BUCKET}/archive")


def archived_manifests(root: str) -> list[tuple[str, dict]]:
    """``(data path, manifest)`` of every archived artifact: relative to a local root, full s3:// URLs."""
    if not root.startswith("s3://"):
        found = [(p, json.loads(p.read_text())) for p in sorted(Path(root).glob("*/*/manifest.json"))]
        return [(str(p.parent.relative_to(root) / m["filename"]), m) for p, m in found]
    client = _OBJECT_STORE[0].client()
    bucket, _, prefix = root.removeprefix("s3://").partition("/")
    listing = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])
    keys = sorted(o["Key"] for o in listing if o["Key"].count("/") == prefix.count("/") + 3
                  and o["Key"].endswith("/manifest.json"))
    found = [(key, json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())) for key in keys]
    return [(f"s3://{bucket}/{key.rsplit('/', 1)[0]}/{m['filename']}", m) for key, m in found]


def print_table(archive_root: str, durations: dict[str, float]) -> None:
    rows = []
    for path, m in archived_manifests(archive_root):
        rows.append((
            m["provider"], str(m["artifact_key"]), f"{m['size_bytes']:,}", m["sha256"][:16] + "…", path,
            # unpausing a scheduled sweep also starts its latest scheduled run, which may archive first
            f"{durations[m['run_id']]:.1f}" if m["run_id"] in durations else "scheduled run",
        ))
    header = ("provider", "id", "size", "sha256", "path", "seconds")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    print(f"{len(rows)} artifacts archived")


if __name__ == "__main__":
    sys.exit(stop_running_demo() if sys.argv[1:] == ["--stop"] else main())
