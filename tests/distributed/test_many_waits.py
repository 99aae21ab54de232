"""Dozens of deferred waits in one real triggerer (CeleryExecutor stack): 30 FlightHub 2 model waits of one
project share one walk of the running list per interval, 30 MiniMax speech waits of one account each poll
at most once per interval, every wait succeeds, and with the emulator enforcing each account's rate
(MiniMax's documented 10/s, FlightHub 2 at the pace's default 5/s) under 1 % of the requests are refused.

The module starts its own stack (its DAG folder holds only the small DAG below: mapped sensors, no
downloads; the pace shared through Redis). The emulator's clock is held (every job queued, every model listed) until all 60 waits are
deferred and the triggerer has walked the list a few times; then it runs, the models leave the list one
stage later and, once each was asked for twice off the list, finish.
"""

from __future__ import annotations

import time

import pytest

from tests.distributed.test_celery_stack import wait_until

pytestmark = pytest.mark.distributed

DAG_ID = "many_waits"
N = 30
INTERVAL = 2.0
PAGE = 10  # the emulator's page size of the running list
RUNNING = "/open_model/models/running"
DAG = f'''
from datetime import datetime

from airflow.sdk import DAG, task

from artifact_harvest.flighthub2.sensors import FlightHub2ModelReadySensor
from artifact_harvest.minimax.sensors import MiniMaxTaskSensor

with DAG("{DAG_ID}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
         params={{"model_uuids": [], "task_ids": []}}):
    @task
    def ids(key, params=None):
        return params[key]

    FlightHub2ModelReadySensor.partial(task_id="model_ready", poke_interval={INTERVAL}, timeout=900).expand(
        model_uuid=ids.override(task_id="models")("model_uuids"))
    MiniMaxTaskSensor.partial(task_id="speech_ready", kind="speech", poke_interval={INTERVAL}, timeout=900).expand(
        minimax_task_id=ids.override(task_id="tasks")("task_ids"))
'''


@pytest.fixture(scope="module")
def stack(request, emulator, stack_starter, tmp_path_factory):
    """Its own stack: this DAG folder, and one pace per connection for every process (Redis, a DB of its own),
    as the compose file configures it (workers' first checks and the triggerer's polls share one budget)."""
    from tests.distributed.conftest import _claim_redis_db, _flush_redis_db

    dags = tmp_path_factory.mktemp("many_waits_dags")
    (dags / "many_waits.py").write_text(DAG)
    pace_db = _claim_redis_db(f"many_waits_pace_{dags.name}")
    try:
        yield from stack_starter(request, emulator, {
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__ARTIFACT_HARVEST__RATE_LIMIT_URL": f"redis://127.0.0.1:6379/{pace_db}"})
    finally:
        _flush_redis_db(pace_db)


def walks(sent: list[dict]) -> list[list[dict]]:
    grouped: list[list[dict]] = []
    for request in sent:
        if request["query"].get("page") == "1":
            grouped.append([])
        if grouped:
            grouped[-1].append(request)
    return grouped


@pytest.mark.timeout(1200)  # its own stack: start (~1.5 min), 60 mapped waits through 4 worker slots, stop
def test_dozens_of_waits_share_polls_in_one_triggerer(stack):
    from artifact_harvest.flighthub2.hook import FlightHub2Hook
    from artifact_harvest.minimax.hook import MiniMaxHook
    from tests.integration.flighthub2.test_hook import upload

    control = stack.emulator.control
    control.reset()
    control.configure(polls_per_stage=0, stage_seconds=1e9, flighthub2_page_size=PAGE)  # held: all queued
    hook = FlightHub2Hook()  # the test's own connections are not paced (tests/conftest.py): set up, then limit
    resource = upload(hook)
    models = [hook.start_reconstruction(resource, {"2d": {}})["2d"] for _ in range(N)]
    minimax = MiniMaxHook()
    tasks = [minimax.create_speech(f"text {i}", "speech-2.8-hd", "v") for i in range(N)]
    control.configure(rate_limits={"minimax": {"rps": 10}, "flighthub2": {"rps": 5}})
    control.clear_rates()
    created = {j["job_id"]: j["created_at"] for j in control.jobs("flighthub2")}
    stack.api.wait_for_dags([DAG_ID], timeout=180)
    stack.api.unpause(DAG_ID)
    run_id = stack.api.trigger(DAG_ID, {"model_uuids": models, "task_ids": tasks})

    def deferred() -> bool:
        tis = stack.api.task_instances(DAG_ID, run_id)
        assert not [ti for ti in tis if ti["state"] in ("failed", "upstream_failed")], tis
        return sum(ti["state"] == "deferred" for ti in tis) == 2 * N

    wait_until("all 60 waits deferred", deferred, timeout=600, interval=1)
    all_deferred = time.time()
    held_walks = lambda: [w for w in walks(control.requests(RUNNING)) if w[0]["time"] > all_deferred]  # noqa: E731
    wait_until("four walks of the running list by the triggerer", lambda: len(held_walks()) >= 5, timeout=120)
    released = time.time()
    stage = (released + INTERVAL - min(created.values())) / 2  # models leave the list ~one interval from now
    control.configure(stage_seconds=stage)
    left = {u: created[u] + 2 * stage for u in models}

    def polled_twice_off_the_list() -> bool:
        sent = [r for r in control.requests("/open_model/models/") if r["method"] == "GET"]
        return all(sum(r["path"].endswith(u) and r["time"] > left[u] for r in sent) >= 2 for u in models)

    # then the models finish at once, not two stages (as long as all the deferrals took) after leaving the list
    wait_until("every model asked for twice after it left the list", polled_twice_off_the_list, timeout=300,
               interval=1)
    control.configure(stage_seconds=0.5)
    assert stack.api.wait_for_run(DAG_ID, run_id, timeout=600) == "success", stack.dump_logs()
    tis = stack.api.task_instances(DAG_ID, run_id)
    assert sum(ti["state"] == "success" for ti in tis) == 2 * N + 2

    fh2 = [r for r in control.requests("/open_model/models/") if r["method"] == "GET" and r["time"] > all_deferred]
    listing = walks([r for r in fh2 if r["path"].endswith(RUNNING)])
    details = [r for r in fh2 if not r["path"].endswith(RUNNING)]
    starts = [w[0]["time"] for w in listing]
    # held: every interval is exactly one walk (3 full pages and the empty one), no detail call at all
    for i, walk in enumerate(listing[1:4], start=1):
        assert [r["query"]["page"] for r in walk] == ["1", "2", "3", "4"], walk
        assert not [r for r in details if starts[i] <= r["time"] < starts[i + 1]]
    # running: per interval the walk's pages plus one detail per model that had left the list, nothing more
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else float("inf")
        window = [r["path"].rsplit("/", 1)[-1] for r in details if start <= r["time"] < end]
        # a model still listed is asked for only when models left the list during the walk: the later pages
        # then shift and the walk misses as many listed models as left (FlightHub 2 pages by position)
        walk_start, walk_end = listing[i][0]["time"], listing[i][-1]["time"]
        early = [u for u in window if left[u] > walk_end + 0.5]
        shifted = sum(walk_start - 0.5 <= left[u] <= walk_end + 0.5 for u in models)
        assert len(early) <= shifted, (i, early, shifted)
        pages = [int(r["query"]["page"]) for r in listing[i]]
        assert pages == list(range(1, len(pages) + 1)) and len(pages) <= N // PAGE + 1
    assert min(b - a for a, b in zip(starts, starts[1:])) >= INTERVAL
    # a refused request (rate limit) did nothing and is resent at once: only accepted ones count as polls
    per_model = {u: [r["time"] for r in details if r["path"].endswith(u) and not r.get("refused")] for u in models}
    assert all(b - a >= INTERVAL for t in per_model.values() for a, b in zip(t, t[1:]))  # once per interval

    # MiniMax: distinct tasks, so at most one query per task per interval (the pace keeps them under the limit)
    queries = [r for r in control.requests("/v1/query/t2a_async_query_v2") if r["time"] > all_deferred]
    per_task = {t: [r["time"] for r in queries if r["query"].get("task_id") == t and not r.get("refused")]
                for t in tasks}
    assert all(per_task.values()), "a speech wait never polled from the triggerer"
    for times in per_task.values():
        assert all(b - a >= INTERVAL for a, b in zip(times, times[1:])), times
    accounts = control.rates()["accounts"]
    for provider in ("minimax", "flighthub2"):
        [counts] = [c for key, c in accounts.items() if key.startswith(provider + ":")]
        assert counts["refused"] <= 0.01 * (counts["refused"] + counts["accepted"]), (provider, counts)
        assert counts["max_per_second"] <= {"minimax": 10, "flighthub2": 5}[provider] + counts["refused"]
    control.reset()



@pytest.mark.timeout(900)
def test_two_triggerers_keep_one_accounts_pace_through_redis(stack):
    """Two triggerer processes (as in HA, each taking at most 20 triggers, so 30 waits land on both) poll 30
    MiniMax speech waits of one account, asking 15 queries a second between them: the pace they share through
    Redis keeps the account's every second at or under its documented 10, and every wait succeeds."""
    from artifact_harvest.minimax.hook import MiniMaxHook

    control = stack.emulator.control
    control.reset()
    control.configure(polls_per_stage=0, stage_seconds=1e9)  # held
    stack.kill("triggerer")
    for name in ("triggerer", "triggerer-b"):
        stack.start(name, env={"AIRFLOW__TRIGGERER__CAPACITY": "20"})
    minimax = MiniMaxHook()  # the test's own connection is not paced (tests/conftest.py): set up, then limit
    tasks = [minimax.create_speech(f"text {i}", "speech-2.8-hd", "v") for i in range(N)]
    control.configure(rate_limits={"minimax": {"rps": 10}})
    control.clear_rates()
    run_id = stack.api.trigger(DAG_ID, {"model_uuids": [], "task_ids": tasks})

    def on_both_triggerers() -> bool:
        tis = [ti for ti in stack.api.task_instances(DAG_ID, run_id) if ti["task_id"] == "speech_ready"]
        assert not [ti for ti in tis if ti["state"] in ("failed", "upstream_failed")], tis
        held_by = {(ti.get("trigger") or {}).get("triggerer_id") for ti in tis if ti["state"] == "deferred"}
        return len(tis) == N and all(ti["state"] == "deferred" for ti in tis) and len(held_by - {None}) == 2

    wait_until("30 waits deferred, on both triggerers", on_both_triggerers, timeout=600, interval=1)
    polled_from = time.time()
    queries = lambda: [r for r in control.requests("/v1/query/t2a_async_query_v2") if r["time"] > polled_from]  # noqa: E731
    wait_until("five intervals of polls from both triggerers", lambda: len(queries()) >= 5 * INTERVAL * 10,
               timeout=120)
    control.configure(stage_seconds=0.5)  # the speech tasks finish
    assert stack.api.wait_for_run(DAG_ID, run_id, timeout=600) == "success", stack.dump_logs()
    [counts] = [c for key, c in control.rates()["accounts"].items() if key.startswith("minimax:")]
    assert counts["max_per_second"] <= 10, counts["per_second"]
    assert counts["refused"] <= 0.01 * (counts["refused"] + counts["accepted"]), counts
    control.reset()
