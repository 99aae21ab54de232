"""``make demo`` stops everything it started: SIGTERM (or SIGHUP) while Airflow is up leaves no process and
nothing listening. The demo runs on ports this test picks, in a folder of its own."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"demo exited ({proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"no {what} after {timeout}s:\n{log.read_text()[-3000:]}")


def started_by(demo: psutil.Process) -> set[int]:
    """The demo's descendants and every process in their sessions (each component runs in its own)."""
    children = demo.children(recursive=True)
    sessions = {os.getsid(c.pid) for c in children if c.is_running()}
    members = set()
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) in sessions:
                members.add(proc.pid)
        except (ProcessLookupError, PermissionError):
            continue
    return {c.pid for c in children} | members


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                left.add(pid)
        except psutil.NoSuchProcess:
            continue
    return left


@pytest.mark.parametrize("signum", [signal.SIGTERM])
def test_signal_stops_everything_the_demo_started(tmp_path, signum):
    api_port, emulator_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}  # not the test suite's Airflow
    env.update(DEMO_DIR=str(tmp_path / "demo"), DEMO_API_PORT=str(api_port), DEMO_EMULATOR_PORT=str(emulator_port))
    log = tmp_path / "demo.out"
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "demo.py")], env=env, cwd=ROOT,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: listening(emulator_port) and listening(api_port), 300, "API server listening", proc, log)
        pids = started_by(psutil.Process(proc.pid))
        assert len(pids) >= 3, pids  # the emulator, airflow standalone and its components
        assert (tmp_path / "demo" / "pids.json").exists()
        imported = (tmp_path / "demo" / "connections.log").read_text()  # in the metadata DB, shown in the UI
        assert all(f"Imported connection {c}" in imported for c in ("flighthub2_default", "minimax_default",
                                                                        "qianfan_default")), imported

        proc.send_signal(signum)
        assert proc.wait(timeout=120) == 128 + signum

        assert not listening(api_port) and not listening(emulator_port)
        assert alive(pids) == set()
        assert not (tmp_path / "demo" / "pids.json").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
