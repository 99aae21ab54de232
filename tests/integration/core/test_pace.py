"""The connection's pace against the emulator enforcing a per-account rate: no refusals at the documented
limit, AIMD when the configured limit is too high, refusals never fail a wait, one budget across processes."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid

import pytest

from artifact_harvest.core.pace import HEADROOM, pace_for, wait_deadline
from artifact_harvest.minimax.hook import MiniMaxHook
from artifact_harvest.minimax.triggers import MiniMaxTaskTrigger
from tests.pace_processes import query_together

SPEECH_QUERY = "/v1/query/t2a_async_query_v2"


@pytest.fixture
def paced_conn(emu):
    """A MiniMax connection of its own (so its pace is fresh), ``rate_limit_rps`` set by the test."""
    made = []

    def make(rps: float | None = None) -> str:
        conn_id = f"minimax_pace_{uuid.uuid4().hex[:8]}"
        conn = json.loads(os.environ["AIRFLOW_CONN_MINIMAX_DEFAULT"])
        conn["extra"] = {k: v for k, v in conn.get("extra", {}).items() if k != "rate_limit_rps"}  # the default
        if rps:
            conn["extra"]["rate_limit_rps"] = rps
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
        made.append(conn_id)
        return conn_id

    yield make
    for conn_id in made:
        os.environ.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)


def speech_task(emu, **scenario) -> str:
    if scenario:
        emu.control.push_scenario("minimax", **scenario)
    return MiniMaxHook().create_speech("t", "speech-2.8-hd", "v")


def minimax_counts(emu) -> dict:
    [counts] = [v for k, v in emu.control.rates()["accounts"].items() if k.startswith("minimax:")]
    return counts


async def callers(conn_id: str, task_id: str, n: int, calls: int) -> list[dict]:
    async def one() -> list[dict]:
        hook = MiniMaxHook(conn_id)
        return [await hook.aquery_task("speech", task_id) for _ in range(calls)]

    return [answer for answers in await asyncio.gather(*(one() for _ in range(n))) for answer in answers]


async def test_concurrent_callers_at_the_documented_limit_are_never_refused(emu, paced_conn):
    task_id = speech_task(emu)
    conn_id = paced_conn()  # empty field: MiniMax's documented 10 queries per second
    emu.control.configure(rate_limits={"minimax": {"rps": 10}})
    emu.control.clear_rates()
    answers = await callers(conn_id, task_id, n=10, calls=4)
    assert len(answers) == 40
    counts = minimax_counts(emu)
    assert counts["refused"] == 0 and counts["accepted"] == 40
    assert counts["max_per_second"] <= 10, counts["per_second"]


def test_sync_callers_take_slots_from_the_same_bucket(emu, paced_conn):
    task_id = speech_task(emu)
    conn_id = paced_conn(4)
    emu.control.configure(rate_limits={"minimax": {"rps": 4}})
    emu.control.clear_rates()

    def one() -> None:
        hook = MiniMaxHook(conn_id)
        for _ in range(4):
            hook.query_task("speech", task_id)

    threads = [threading.Thread(target=one) for _ in range(3)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    counts = minimax_counts(emu)
    assert counts["refused"] == 0 and counts["accepted"] == 12
    assert counts["max_per_second"] <= 4
    assert time.monotonic() - started >= 11 / (4 * HEADROOM) - 0.1  # 12 calls spaced at the paced rate


async def test_a_limit_configured_too_high_shrinks_the_pace_and_fails_no_call(emu, paced_conn):
    task_id = speech_task(emu)
    conn_id = paced_conn(50)
    emu.control.configure(rate_limits={"minimax": {"rps": 5}})
    emu.control.clear_rates()
    with wait_deadline(time.time() + 120):
        answers = await callers(conn_id, task_id, n=8, calls=4)
    assert len(answers) == 32 and all(a["base_resp"]["status_code"] == 0 for a in answers)
    counts = minimax_counts(emu)
    assert counts["accepted"] == 32 and counts["refused"] > 0
    pace = pace_for("minimax", conn_id, 50)
    assert pace.rate < 50 * HEADROOM / 2  # halved at least once by the refusals


async def test_a_wait_refused_for_a_long_stretch_still_succeeds(emu, paced_conn):
    """Every poll is refused (MiniMax 1002) for 3 s, sixty poll intervals, with max_transient_errors=1."""
    task_id = speech_task(emu)
    conn_id = paced_conn(20)
    emu.control.add_fault(route=SPEECH_QUERY, kind="envelope",
                          body={"base_resp": {"status_code": 1002, "status_msg": "rate limit exceeded"}}, times=-1)
    refused: list[int] = []

    def provider_lets_through() -> None:  # the scenario: the provider's refusals end after 3 s
        refused.append(len(emu.control.faults()["applied"]))
        emu.control.clear_faults()

    lets_through = threading.Timer(3.0, provider_lets_through)
    started = time.monotonic()
    lets_through.start()
    try:
        trigger = MiniMaxTaskTrigger(minimax_task_id=task_id, kind="speech", conn_id=conn_id,
                                     end_time=time.time() + 60, poll_interval=0.05, max_transient_errors=1)
        events = [event.payload async for event in trigger.run()]
    finally:
        lets_through.cancel()
    assert [e["status"] for e in events] == ["success"]
    assert time.monotonic() - started >= 3.0
    assert refused[0] >= 4  # refused again and again (the pace backs off), none counted as an error


async def test_a_wait_refused_until_its_deadline_times_out_not_errors(emu, paced_conn):
    task_id = speech_task(emu)
    conn_id = paced_conn(20)
    emu.control.add_fault(route=SPEECH_QUERY, kind="envelope",
                          body={"base_resp": {"status_code": 1002, "status_msg": "rate limit exceeded"}}, times=-1)
    trigger = MiniMaxTaskTrigger(minimax_task_id=task_id, kind="speech", conn_id=conn_id,
                                 end_time=time.time() + 2, poll_interval=0.05, max_transient_errors=0)
    started = time.monotonic()
    events = [event.payload async for event in trigger.run()]
    assert [e["status"] for e in events] == ["timeout"]
    assert time.monotonic() - started < 10


def _redis_url() -> str:
    import redis

    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("ARTIFACT_HARVEST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Redis on 127.0.0.1:6379 is required: {exc}")
        pytest.skip(f"no Redis on 127.0.0.1:6379: {exc}")
    return url


def test_two_processes_standing_in_for_two_triggerers_share_one_budget_through_redis(emu, paced_conn):
    import redis

    url = _redis_url()
    task_id = speech_task(emu)
    conn_id = paced_conn()  # 10/s documented: either process alone would take 9/s
    emu.control.configure(rate_limits={"minimax": {"rps": 10}})
    emu.control.clear_rates()
    env = {**os.environ, "AIRFLOW__ARTIFACT_HARVEST__RATE_LIMIT_URL": url}
    try:
        spans = query_together(conn_id, task_id, callers=5, calls=6, env=env, timeout=120)
    finally:
        redis.Redis.from_url(url).delete(f"artifact_harvest:pace:minimax:{conn_id}")
    assert max(s["start"] for s in spans) < min(s["end"] for s in spans)  # they ran at the same time
    counts = minimax_counts(emu)
    assert counts["accepted"] == 60 and counts["refused"] == 0
    assert counts["max_per_second"] <= 10, counts["per_second"]


@pytest.mark.parametrize("value", ["fast", 0, -2])
def test_a_bad_rate_field_names_the_field(emu, paced_conn, value):
    from artifact_harvest.core.errors import FatalProviderError

    conn_id = paced_conn()
    conn = json.loads(os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"])
    conn["extra"]["rate_limit_rps"] = value
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    with pytest.raises(FatalProviderError, match="rate_limit_rps") as info:
        MiniMaxHook(conn_id).query_task("speech", "1")
    assert repr(value) in str(info.value) and info.value.provider == "minimax"


def test_an_unreachable_redis_falls_back_to_the_process_bucket_for_a_while(caplog):
    import socket

    from artifact_harvest.core.pace import Pace

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pace = Pace(f"artifact_harvest:pace:test:{uuid.uuid4().hex}", 10.0, f"redis://127.0.0.1:{port}/0")
    waits = [pace.reserve() for _ in range(3)]
    assert waits[0] == 0 and 0.1 < waits[2] <= 0.2 + 0.05  # the process's own bucket, spaced at 10/s
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1  # tried once, not per call
