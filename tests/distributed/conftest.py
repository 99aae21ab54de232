"""The docker-compose topology without Docker: PostgreSQL and Redis on 127.0.0.1, and scheduler, dag-processor,
triggerer, API server and one Celery worker as separate processes, each in its own process group.

The stack gets its own database (``artifact_harvest_<random>``), Redis DB, AIRFLOW_HOME, ports, archive and
staging dirs, so it never touches anything it did not create; everything it started is killed and dropped at
the end. Without PostgreSQL or Redis the tests skip, unless ``ARTIFACT_HARVEST_REQUIRE_SERVICES=1`` (``.ci/run``),
which turns the skip into a failure.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scripts.airflow_api import AirflowApi  # noqa: E402
from scripts.airflow_home import project_airflow_env  # noqa: E402

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS = ("127.0.0.1", 6379)
COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")

_FAILED = pytest.StashKey[list]()  # node ids of failed distributed tests: their stack's logs get printed


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call" and report.failed:
        item.session.stash.setdefault(_FAILED, []).append(item.nodeid)
    return report


def _services_problem() -> str | None:
    try:
        import psycopg2

        psycopg2.connect(dbname="postgres", connect_timeout=3, **PG).close()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL at {PG['host']}:{PG['port']} (trust, user postgres) unreachable: {' '.join(str(exc).split())}"
    try:
        with socket.create_connection(REDIS, timeout=3) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(16).startswith(b"+PONG"):
                return f"Redis at {REDIS[0]}:{REDIS[1]} did not answer PING"
    except OSError as exc:
        return f"Redis at {REDIS[0]}:{REDIS[1]} unreachable: {exc}"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_admin(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(dbname="postgres", **PG)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def _claim_redis_db(owner: str) -> int:
    """A Redis DB no other stack uses (two stacks on one broker DB would run each other's tasks)."""
    import redis

    for db in random.sample(range(1, 16), 15):
        if redis.Redis(host=REDIS[0], port=REDIS[1], db=db).set("artifact-harvest:stack", owner, nx=True, ex=4 * 3600):
            return db
    raise RuntimeError("every Redis DB 1-15 is claimed by another running stack")


def _flush_redis_db(db: int) -> None:
    with socket.create_connection(REDIS, timeout=5) as sock:
        sock.sendall(f"SELECT {db}\r\nFLUSHDB\r\n".encode())
        sock.recv(64)


class Stack:
    """The running processes plus the means to kill, restart and inspect them."""

    def __init__(self, workdir: Path, env: dict[str, str], api_port: int, emulator) -> None:
        self.workdir = workdir
        self.env = env
        self.logs = workdir / "process-logs"
        self.logs.mkdir()
        self.home = Path(env["AIRFLOW_HOME"])
        self.dags_folder = Path(env["AIRFLOW__CORE__DAGS_FOLDER"])
        self.emulator = emulator
        self.api = AirflowApi(f"http://127.0.0.1:{api_port}")
        self.procs: dict[str, subprocess.Popen] = {}
        self._generation: dict[str, int] = {}

    @property
    def archive(self) -> Path:
        """The archive root the stack's workers use now (a local path, unless ``configured`` says otherwise)."""
        return Path(self.env["AIRFLOW_VAR_ARTIFACT_ARCHIVE_ROOT"])

    @property
    def staging(self) -> Path:
        """The staging dir of the worker ``celery-worker`` (as configured now)."""
        return Path(self.env["AIRFLOW_VAR_ARTIFACT_STAGING_DIR"])

    @contextlib.contextmanager
    def configured(self, env: dict[str, str], restart: tuple[str, ...]) -> Iterator[Stack]:
        """The shared stack with a module's own settings: ``env`` for every component started inside, and the
        components in ``restart`` (the ones that read those settings) restarted with it now and without it at
        the end, when the components started inside (a second worker or triggerer) are stopped."""
        saved, before = dict(self.env), set(self.procs)
        self.env.update(env)
        self._restart(restart)
        try:
            yield self
        finally:
            self.env.clear()
            self.env.update(saved)
            for name in set(self.procs) - before:
                self.kill(name, signal.SIGTERM)
            self._restart(tuple(restart) + tuple(sorted(before - set(self.procs) - set(restart))))

    def _restart(self, names: tuple[str, ...]) -> None:
        for name in names:
            if name in self.procs:
                self.kill(name, signal.SIGTERM)
        for name in names:
            self.start(name)

    def airflow(self, *args: str, timeout: float = 300) -> None:
        log = self.logs / f"airflow-{args[0]}.log"
        with log.open("ab") as out:
            subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env, check=True,
                           stdout=out, stderr=subprocess.STDOUT, timeout=timeout)

    def start(self, name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start one component in its own process group: ``celery-worker`` (or a second worker named
        ``celery-worker-<x>``, e.g. with its own staging dir in ``env``: another host) or one of COMPONENTS
        (a second one of them as ``<component>-b``, e.g. ``triggerer-b``: a second triggerer, as in HA)."""
        generation = self._generation[name] = self._generation.get(name, 0) + 1
        if name.startswith("celery-worker-"):  # another host: its own log server port
            env = {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()), **(env or {})}
        args = ["celery", "worker", "-H", self.worker_name(name, generation), "--without-mingle", "--without-gossip"] \
            if name.startswith("celery-worker") else [next(c for c in COMPONENTS if name in (c, f"{c}-b"))]
        log = self.logs / f"{name}-{generation}.log"
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args], env={**self.env, **(env or {})}, stdout=log.open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self.procs[name]

    def worker_name(self, name: str = "celery-worker", generation: int | None = None) -> str:
        """The Celery node name of a worker (``harvest-<n>@host``; ``harvest-<x>-<n>@host`` for another one)."""
        suffix = name[len("celery-worker"):]
        return f"harvest{suffix}-{generation or self._generation.get(name, 1)}@{socket.gethostname()}"

    def consume(self, name: str, on: bool, queue: str = "default") -> bool:
        """Celery's remote control: the worker takes new tasks from ``queue`` (``on``) or keeps running its
        tasks but takes no new ones; False when the worker did not answer (not up yet)."""
        from celery import Celery

        app = Celery(broker=self.env["AIRFLOW__CELERY__BROKER_URL"])
        command = app.control.add_consumer if on else app.control.cancel_consumer
        try:
            return bool(command(queue, destination=[self.worker_name(name)], reply=True, timeout=5))
        finally:
            app.close()

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the component's process group and every descendant, then reap them all.

        Descendants count because some leave the group: the task supervisor runs each task in its own
        session, so a task would outlive its killed worker, unlike in a container that dies as a whole.
        """
        proc = self.procs.pop(name)
        try:
            descendants = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        for child in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        _, alive = psutil.wait_procs(descendants, timeout=30)
        for child in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()

    def stop_all(self) -> None:
        """SIGTERM to every component at once (each shuts down gracefully, beside the others), then reap them."""
        names = list(self.procs)
        if names:
            with ThreadPoolExecutor(len(names)) as pool:
                list(pool.map(lambda name: self.kill(name, signal.SIGTERM), names))

    def assert_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.procs.items() if p.poll() is not None}
        assert not dead, f"components exited: {dead}; logs in {self.logs}"

    def dump_logs(self, lines: int = 60) -> str:
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"===== {log.name} (last {len(tail)} lines) =====\n" + "\n".join(tail))
        return "\n".join(parts)


# one stack for the distributed modules: starting it takes a minute and a half on two cores; it stops after the
# last distributed test (package scope: its idle processes would slow every later test). A module that needs
# other settings applies them to it with ``Stack.configured`` (restarting only the components that read them).
# test_many_waits.py starts a stack of its own on purpose: its two tests take about half as long as all the others
# together, so on a stack of its own it runs beside the shared one on the other xdist worker (tests/conftest.py)
# instead of after it on the same one.
@pytest.fixture(scope="package")
def stack(request: pytest.FixtureRequest, emulator) -> Iterator[Stack]:
    yield from start_stack(request, emulator)


@pytest.fixture(scope="session")
def stack_starter():
    """``start_stack`` for a module that overrides ``stack`` with a stack of its own."""
    return start_stack


def start_stack(request: pytest.FixtureRequest, emulator, extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """A whole stack with ``extra_env`` over the defaults (a module that needs its own DAG folder, say)."""
    problem = _services_problem()
    if problem:
        if os.environ.get("ARTIFACT_HARVEST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"ARTIFACT_HARVEST_REQUIRE_SERVICES=1 but {problem}")
        pytest.skip(problem)

    from harvest_emulator.credentials import connection_env

    workdir = Path(tempfile.mkdtemp(prefix="artifact-harvest-distributed-"))
    database = f"artifact_harvest_{secrets.token_hex(4)}"
    redis_db = _claim_redis_db(database)
    home = workdir / "airflow"
    for name in ("archive", "staging"):
        (workdir / name).mkdir()
    api_port = _free_port()
    sql = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))},
        **connection_env(emulator.url),
        **project_airflow_env(home),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@127.0.0.1:5432/{database}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(_free_port()),
        # notice a killed worker or triggerer within seconds, not minutes
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        # and retry it within seconds: Airflow's global cap on the DAGs' exponential retry delay (30 s, doubling)
        "AIRFLOW__CORE__MAX_TASK_RETRY_DELAY": "2",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "6",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW_VAR_ARTIFACT_ARCHIVE_ROOT": str(workdir / "archive"),
        "AIRFLOW_VAR_ARTIFACT_STAGING_DIR": str(workdir / "staging"),
        "AIRFLOW__ARTIFACT_HARVEST__RETRY_BASE_DELAY": "0.2",
        "AIRFLOW__ARTIFACT_HARVEST__RETRY_MAX_DELAY": "2",
        # the archive lease: a dead holder is taken over within seconds (production: 30 s renewals, 180 s expiry)
        "AIRFLOW__ARTIFACT_HARVEST__LEASE_RENEW_INTERVAL": "1",
        "AIRFLOW__ARTIFACT_HARVEST__LEASE_EXPIRY": "6",
        "AIRFLOW__ARTIFACT_HARVEST__LEASE_POLL_INTERVAL": "0.5",
        **(extra_env or {}),
    }
    s = Stack(workdir, env, api_port, emulator)
    print(f"\ndistributed stack: database {database}, redis db {redis_db}, logs {s.logs}")
    _pg_admin(f'CREATE DATABASE "{database}"')
    try:
        s.airflow("db", "migrate")
        for name in (*COMPONENTS, "celery-worker"):
            s.start(name)
        s.api.wait_healthy(timeout=120, components=("metadatabase", "scheduler", "triggerer", "dag_processor"))
        s.assert_alive()
        yield s
    finally:
        s.stop_all()
        _pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        _flush_redis_db(redis_db)
        if request.session.stash.get(_FAILED, []):
            print(s.dump_logs())
            print(f"distributed stack: kept {workdir} for the post-mortem")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
