"""The docker-compose topology run for real: CeleryExecutor, PostgreSQL, Redis, every component its own process.

One stack (see conftest.py), four scenarios: every pipeline through the REST API under bursts of 5xx/429, a
Celery worker SIGKILLed mid-download (the retry resumes with Range), the triggerer SIGKILLed while
sensors are deferred (a new triggerer picks the waits up), and a backfill of the daily FlightHub 2 sweep
run by the real scheduler (exactly its days archived; a re-run archives nothing twice).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import threading
import time
from pathlib import Path

import pytest
from harvest_emulator.app import demo_runs

from tests.security.test_secrets import leaks, used_secrets

pytestmark = pytest.mark.distributed

MiB = 1 << 20
RUNS = demo_runs()


def wait_until(what: str, predicate, timeout: float, interval: float = 0.2):
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
    return value


@pytest.fixture(scope="module")
def live(stack):
    """The stack with the emulator on a wall clock (jobs advance every ``stage_seconds``) and all DAGs unpaused."""
    assert RUNS, "no provider emulator module exposes DEMO_RUNS"
    stack.emulator.control.reset()
    stack.emulator.control.configure(polls_per_stage=0, stage_seconds=1.5)
    dag_ids = sorted({dag_id for dag_id, _ in RUNS})
    stack.api.wait_for_dags(dag_ids, timeout=120)
    for dag_id in dag_ids:
        stack.api.unpause(dag_id)
    yield stack
    stack.emulator.control.reset()  # the emulator is the session's: hand it back as found


def trigger_all(stack, runs: list[tuple[str, dict]]) -> list[tuple[str, str]]:
    return [(dag_id, stack.api.trigger(dag_id, conf)) for dag_id, conf in runs]


def wait_all(stack, triggered: list[tuple[str, str]], timeout: float) -> dict[tuple[str, str], str]:
    deadline = time.monotonic() + timeout
    states = {}
    for dag_id, run_id in triggered:
        states[(dag_id, run_id)] = stack.api.wait_for_run(dag_id, run_id, timeout=max(deadline - time.monotonic(), 1))
    return states


def task_instances(stack, triggered: list[tuple[str, str]]) -> list[dict]:
    return [ti for dag_id, run_id in triggered for ti in stack.api.task_instances(dag_id, run_id)]


def verified_manifests(archive: Path) -> list[dict]:
    """Every manifest's file exists with the size and sha256 it claims; nothing half-written is left over."""
    manifests = []
    for path in archive.rglob("manifest.json"):
        manifest = json.loads(path.read_text())
        data = path.parent / manifest["filename"]
        digest = hashlib.sha256()
        with data.open("rb") as f:
            while chunk := f.read(4 * MiB):
                digest.update(chunk)
        assert (data.stat().st_size, digest.hexdigest()) == (manifest["size_bytes"], manifest["sha256"]), path
        manifests.append(manifest)
    leftovers = [p for p in archive.rglob("*") if p.suffix in (".part", ".tmp")]
    assert not leftovers, leftovers
    return manifests


#: every route but the control API and the paid creates (MiniMax video/speech, FlightHub 2 start) ...
SPARE_CREATES = r"^/(?!_emulator|v1/video_generation$|v1/t2a_async_v2$|openapi/[^/]+/open_model/models/reconstruction/start$)"
#: ... and Qianfan's create, told apart by its query string
SPARE_QIANFAN_CREATE = r"^(?!.*Action=CreateModelExportTask)"


class FaultBursts:
    """Short bursts of 503 and 429 (with Retry-After) on every provider route while runs go on.

    A new burst is armed only once the previous one has been spent, and ``every`` seconds later: longer than
    the longest backoff (``retry_max_delay`` 2 s here), so one request meets at most one burst and faults never
    pile up into an outage longer than the retry budget (that would be a different test). With 1 s, a slow
    request on a loaded machine met three bursts in a row and spent its five attempts.
    The 503 bursts spare the paid creates: a bare 503 there is in doubt, never resent (docs/resend-rule.md).
    """

    def __init__(self, stack, every: float = 3.0, times: int = 2) -> None:
        self.control, self.every, self.times = stack.emulator.control, every, times
        self.ids: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for status in itertools.cycle((503, 429)):
            extra = {"retry_after": 1} if status == 429 else {"route": SPARE_CREATES, "query": SPARE_QIANFAN_CREATE}
            # provider API and download routes alike; the control API is never faulted
            fault = {"route": "^/(?!_emulator)", "status": status, "times": self.times, **extra}
            self.ids[self.control.add_fault(**fault)] = status
            while self.control.faults()["faults"]:
                if self._stop.wait(0.2):
                    return
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> FaultBursts:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.control.clear_faults()  # keeps nothing for the next scenario (``applied`` is read before)


def test_every_pipeline_succeeds_through_bursts_of_5xx_and_429(live):
    with FaultBursts(live) as bursts:
        triggered = trigger_all(live, RUNS)
        states = wait_all(live, triggered, timeout=240)
        applied = {a["id"] for a in live.emulator.control.faults()["applied"]}
    assert set(states.values()) == {"success"}, {run: state for run, state in states.items() if state != "success"}

    # the bursts really hit the runs, both kinds, and were absorbed by the in-call retries: no task retried
    hit = {bursts.ids[i] for i in applied if i in bursts.ids}
    assert hit == {503, 429}, f"faults applied: {applied}, planned: {bursts.ids}"
    tis = task_instances(live, triggered)
    assert {ti["state"] for ti in tis} <= {"success", "skipped"}, [(ti["task_id"], ti["state"]) for ti in tis]
    retried = [(ti["dag_id"], ti["task_id"], ti["try_number"]) for ti in tis if ti["try_number"] > 1]
    assert not retried, f"a transient fault escalated to an Airflow retry: {retried}"

    manifests = verified_manifests(live.archive)
    providers = {dag_id.split("_", 1)[0] for dag_id, _ in triggered}
    assert {m["provider"] for m in manifests} == providers

    # what a user sees through the API (task logs, XComs, run conf) holds no credential and no signed URL
    secrets = used_secrets(live.emulator.control.requests())
    for dag_id, run_id in triggered:
        texts = [json.dumps(live.api.run(dag_id, run_id).get("conf"))]
        texts += [json.dumps(x) for x in live.api.xcom_entries(dag_id, run_id)]
        for ti in live.api.task_instances(dag_id, run_id):
            texts.append(live.api.task_log(dag_id, run_id, ti["task_id"], ti["try_number"], ti["map_index"]))
        found = leaks("\n".join(texts), secrets)
        assert not found, f"{dag_id}/{run_id}: {found}"


def test_celery_worker_killed_mid_download_resumes_with_range(live):
    size = 48 * MiB
    control = live.emulator.control
    control.push_scenario("qianfan", size=size)  # the next export is a 48 MiB tar
    control.add_fault(route="^/blobs/", kind="slow", rate=3_000_000, times=1)  # ~16 s: time to kill it
    conf = {"model_version_id": f"amv-kill{secrets.token_hex(4)}", "poll_interval": 0.5, "timeout": "PT10M"}
    run_id = live.api.trigger("qianfan_export_model", conf)

    part = wait_until(
        "the download to be under way in staging",
        lambda: next((p for p in live.staging.rglob("*.part") if p.stat().st_size > 4 * MiB), None),
        timeout=120,
    )
    live.kill("celery-worker")
    killed_at, offset_at_kill = time.time(), part.stat().st_size
    assert offset_at_kill < size, "the download finished before the worker was killed"
    live.start("celery-worker")

    assert live.api.wait_for_run("qianfan_export_model", run_id, timeout=240) == "success"
    tis = {ti["task_id"]: ti for ti in live.api.task_instances("qianfan_export_model", run_id)}
    assert tis["download_and_archive"]["try_number"] >= 2  # the killed try, then the retry

    resumed = [r for r in control.requests("^/blobs/") if r["time"] > killed_at and r["method"] == "GET"]
    ranges = [r["headers"].get("Range", "") for r in resumed]
    assert any(h.startswith("bytes=") and int(h[6:].split("-")[0]) > 0 for h in ranges), ranges

    manifests = [m for m in verified_manifests(live.archive) if m["run_id"] == run_id]
    assert len(manifests) == 1 and manifests[0]["size_bytes"] >= size, manifests  # a tar: payload + headers
    copies = [p for p in live.archive.rglob("*") if p.is_file() and p.stat().st_size == manifests[0]["size_bytes"]]
    assert len(copies) == 1, copies  # exactly one copy, and verified_manifests checked its sha256
    assert not list(live.staging.rglob("*.part"))


def test_triggerer_killed_while_sensors_are_deferred(live):
    live.emulator.control.configure(stage_seconds=4)  # waits long enough to kill the triggerer in the middle
    runs = [(dag_id, conf) for dag_id, conf in RUNS if "poll_interval" in conf]
    triggered = trigger_all(live, runs)

    def deferred() -> list[dict]:
        tis = [ti for ti in task_instances(live, triggered) if ti["state"] == "deferred"]
        return tis if len(tis) >= min(2, len(runs)) else []

    waiting = wait_until("sensors to defer", deferred, timeout=120, interval=0.5)
    live.kill("triggerer")
    killed_at = time.time()
    live.start("triggerer")

    states = wait_all(live, triggered, timeout=240)
    assert set(states.values()) == {"success"}, {run: state for run, state in states.items() if state != "success"}
    final = {(ti["dag_id"], ti["dag_run_id"], ti["task_id"]): ti for ti in task_instances(live, triggered)}
    for ti in waiting:
        after = final[(ti["dag_id"], ti["dag_run_id"], ti["task_id"])]
        assert (after["state"], after["try_number"]) == ("success", ti["try_number"]), after
    polled_after = [r for r in live.emulator.control.requests() if r["time"] > killed_at and r["method"] == "GET"]
    assert polled_after, "nothing polled the emulator after the triggerer restart"


def test_backfill_archives_exactly_its_days_and_a_rerun_nothing_twice(live):
    """``airflow backfill create`` (the REST twin) over two past days of the daily FlightHub 2 sweep."""
    from artifact_harvest.flighthub2.hook import FlightHub2Hook

    dag_id = "flighthub2_archive_project_models"
    control, hook = live.emulator.control, FlightHub2Hook()
    created = {}
    for day, hour in (("2026-03-10", 10), ("2026-03-11", 12), ("2026-03-12", 8)):  # the third is outside
        control.push_scenario("flighthub2", create_at=_epoch(f"{day}T{hour:02d}:00:00+00:00"))
        created[day] = hook.create_model(f"survey {day}", ["model_3d"], task_folder_id=1)

    def backfill_runs() -> list[dict]:
        return [r for r in live.api.runs(dag_id) if r["run_type"] == "backfill"]

    def finished(count: int) -> list[dict]:
        runs = backfill_runs()
        assert len(runs) == count and all(r["state"] in ("success", "failed") for r in runs), runs
        return runs

    backfill = live.api.backfill(dag_id, "2026-03-10T00:00:00Z", "2026-03-11T00:00:00Z")
    wait_until("the backfill to complete", lambda: live.api.backfill_completed(backfill), timeout=240, interval=1)
    runs = finished(2)
    assert {r["state"] for r in runs} == {"success"}, runs
    keys = {m["artifact_key"]: m for m in verified_manifests(live.archive) if m["dag_id"] == dag_id}
    assert f"model-{created['2026-03-10']}" in keys and f"model-{created['2026-03-11']}" in keys
    assert f"model-{created['2026-03-12']}" not in keys  # not in the backfilled days
    first = keys[f"model-{created['2026-03-10']}"]

    rerun_at = time.time()
    rerun = live.api.backfill(dag_id, "2026-03-10T00:00:00Z", "2026-03-10T00:00:00Z", reprocess_behavior="completed")
    wait_until("the re-run of 2026-03-10", lambda: live.api.backfill_completed(rerun), timeout=240, interval=1)
    rerun_runs = [r for r in backfill_runs() if r["end_date"] and _epoch(r["end_date"]) > rerun_at]
    assert [r["state"] for r in rerun_runs] == ["success"], backfill_runs()
    again = {m["artifact_key"]: m for m in verified_manifests(live.archive) if m["dag_id"] == dag_id}
    assert again[first["artifact_key"]] == first  # untouched: same run, same archived_at
    downloads = [r for r in control.requests(f"/model-{created['2026-03-10']}\\.zip$") if r["time"] > rerun_at]
    assert downloads == [], downloads  # nothing fetched twice


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
