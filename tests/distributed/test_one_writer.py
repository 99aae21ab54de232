"""One writer per key across hosts, on the real CeleryExecutor stack: a second Celery worker with a staging
directory of its own (another host) and the same archive.

- Two runs of one Qianfan export, one per worker: the body is downloaded once, one copy is archived, one
  Asset event names it and the other run's event says ``already_archived``.
- The worker holding the lease is SIGKILLed mid-download: the retry, on the other worker, takes the lease
  over after its expiry (6 s here) and finishes.

Which worker takes a task is decided with Celery's remote control (``add_consumer``/``cancel_consumer`` of the
``default`` queue), so each run lands where the test means it to.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.distributed.test_celery_stack import verified_manifests, wait_until

pytestmark = pytest.mark.distributed

MiB = 1 << 20
DAG_ID = "qianfan_export_model"
OTHER = "celery-worker-b"


@contextlib.contextmanager
def second_worker(stack) -> Iterator[Path]:
    """Worker B (own staging dir), started idle; afterwards B is gone and worker A consumes as before."""
    staging = stack.workdir / f"staging-b-{secrets.token_hex(3)}"
    staging.mkdir()
    stack.start(OTHER, env={"AIRFLOW_VAR_ARTIFACT_STAGING_DIR": str(staging)})
    try:
        wait_until("worker B to answer and stop consuming", lambda: stack.consume(OTHER, False), timeout=120,
                   interval=1)
        yield staging
    finally:
        stack.kill(OTHER)
        if "celery-worker" not in stack.procs:
            stack.start("celery-worker")
        wait_until("worker A to consume again", lambda: stack.consume("celery-worker", True), timeout=120, interval=1)


def start_export(stack, size: int, rate: int) -> tuple[str, str]:
    """A Qianfan export every run of ``model`` attaches to, served at ``rate`` bytes/s; (model, export id)."""
    from artifact_harvest.qianfan.hook import QianfanHook

    control = stack.emulator.control
    control.reset()
    control.configure(polls_per_stage=0, stage_seconds=0.5)
    control.push_scenario("qianfan", size=size)
    model = f"amv-lease{secrets.token_hex(3)}"
    export_id = QianfanHook().create_export(model)
    control.configure(per_connection_rate=rate)
    stack.api.wait_for_dags([DAG_ID], timeout=120)
    stack.api.unpause(DAG_ID)
    return model, export_id


def trigger(stack, model: str) -> str:
    return stack.api.trigger(DAG_ID, {"model_version_id": model, "poll_interval": 0.5, "timeout": "PT5M"})


def downloading_in(staging: Path, at_least: int = 2 * MiB) -> Callable[[], Path | None]:
    return lambda: next((p for p in staging.rglob("*.part") if p.stat().st_size >= at_least), None)


def body_gets(stack) -> list[dict]:
    return [r for r in stack.emulator.control.requests(path="^/blobs/") if r["method"] == "GET"]


def events(stack, run_id: str) -> list[dict]:
    answer = stack.api.json("GET", "/api/v2/assets/events",
                            params={"source_dag_id": DAG_ID, "source_run_id": run_id, "limit": 100})
    return [e.get("extra") or {} for e in answer["asset_events"]]


def download_log(stack, run_id: str) -> tuple[dict, str]:
    """The download task and its last try's log, read from the log folder both workers share."""
    ti = next(t for t in stack.api.task_instances(DAG_ID, run_id) if t["task_id"] == "download_and_archive")
    [log] = [p for p in stack.home.rglob(f"attempt={ti['try_number']}.log")
             if f"run_id={run_id}" in str(p) and "task_id=download_and_archive" in str(p)]
    return ti, log.read_text(errors="replace")


def race_two_hosts(stack, archived: Callable[[str], dict]) -> None:
    """Run 1 downloads on worker A; run 2, on worker B, waits for A's lease, then finds the archive.

    ``archived(export_id)`` checks the one archived copy (bytes = manifest, no lease left) and returns its
    manifest."""
    model, export_id = start_export(stack, size=24 * MiB, rate=MiB)  # ~24 s: run 2 arrives while run 1 fetches
    with second_worker(stack) as other_staging:
        first = trigger(stack, model)
        wait_until("run 1 to download on worker A", downloading_in(stack.staging), timeout=180)
        assert stack.consume("celery-worker", False) and stack.consume(OTHER, True)
        second = trigger(stack, model)
        states = [stack.api.wait_for_run(DAG_ID, run, timeout=300) for run in (first, second)]
        assert states == ["success", "success"], stack.dump_logs()
        assert not [p for p in other_staging.rglob("*") if p.is_file()], "worker B staged nothing"
    stack.emulator.control.configure(per_connection_rate=0)

    assert len(body_gets(stack)) == 1, "the body was downloaded once"
    _, log = download_log(stack, second)
    assert "waiting for its archive lease" in log and "is already archived" in log, log[-3000:]
    manifest = archived(export_id)
    assert manifest["run_id"] == first
    assert [e.get("already_archived") for e in events(stack, first)] == [None]
    [repeat] = events(stack, second)
    assert repeat["already_archived"] is True and repeat["sha256"] == manifest["sha256"]


def local_copy(stack) -> Callable[[str], dict]:
    def check(export_id: str) -> dict:
        [manifest] = [m for m in verified_manifests(stack.archive) if m["artifact_key"] == export_id]
        folder = stack.archive / "qianfan" / export_id
        assert sorted(p.name for p in folder.iterdir()) == sorted(["manifest.json", manifest["filename"]])
        return manifest

    return check


def test_two_hosts_one_export_one_download_one_copy_one_event(stack):
    race_two_hosts(stack, local_copy(stack))


def test_worker_killed_holding_the_lease_another_host_takes_over(stack):
    model, export_id = start_export(stack, size=24 * MiB, rate=MiB)
    with second_worker(stack) as other_staging:
        run_id = trigger(stack, model)
        wait_until("the download to be under way on worker A", downloading_in(stack.staging), timeout=180)
        lease = wait_until("A's lease", lambda: list((stack.archive / "qianfan" / export_id).glob(".lease.*")),
                           timeout=30)
        assert [p.name for p in lease] == [".lease.0"]
        stack.kill("celery-worker")  # the worker and its task die; the lease is not released
        killed_at = time.time()
        assert stack.consume(OTHER, True)
        assert stack.api.wait_for_run(DAG_ID, run_id, timeout=300) == "success", stack.dump_logs()
        ti, log = download_log(stack, run_id)
        assert ti["try_number"] >= 2
        assert "was not renewed for" in log and "taking it over" in log, log[-3000:]
        assert [p for p in other_staging.rglob("*") if p.is_file() and p.name != ".lock"] == [], "B's staging is clean"
    stack.emulator.control.configure(per_connection_rate=0)

    after = [r for r in body_gets(stack) if r["time"] > killed_at]
    assert len(after) == 1 and "Range" not in after[0]["headers"], "B fetched the whole body (A's partial is A's)"
    manifest = local_copy(stack)(export_id)
    assert manifest["run_id"] == run_id
    assert [e.get("already_archived") for e in events(stack, run_id)] == [None]
