"""One keep-alive session per connection and event loop: many polls, a handful of TCP connections (counted by
the emulator, server side), and the session closed when the last trigger using it ends."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid

import pytest

from artifact_harvest.core import pool
from artifact_harvest.minimax.hook import MiniMaxHook
from artifact_harvest.minimax.triggers import MiniMaxTaskTrigger

SPEECH_QUERY = "/v1/query/t2a_async_query_v2"


@pytest.fixture
def conn_id(emu):
    conn_id = f"minimax_pool_{uuid.uuid4().hex[:8]}"
    conn = json.loads(os.environ["AIRFLOW_CONN_MINIMAX_DEFAULT"])
    conn["extra"] = {"rate_limit_rps": 200}
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    yield conn_id
    os.environ.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)


def trigger(task_id: str, conn_id: str, deadline: float = 30) -> MiniMaxTaskTrigger:
    return MiniMaxTaskTrigger(minimax_task_id=task_id, kind="speech", conn_id=conn_id,
                              end_time=time.time() + deadline, poll_interval=0.02, max_transient_errors=0)


async def run(trig: MiniMaxTaskTrigger) -> list[dict]:
    return [event.payload async for event in trig.run()]


async def test_many_polls_on_one_connection_open_a_handful_of_tcp_connections(emu, conn_id):
    hook = MiniMaxHook()
    tasks = []
    for _ in range(8):
        emu.control.push_scenario("minimax", outcome="unknown_status")  # a few more polls each
        tasks.append(hook.create_speech("t", "speech-2.8-hd", "v"))
    emu.control.clear_rates()
    results = await asyncio.gather(*(run(trigger(t, conn_id)) for t in tasks))
    assert all([e["status"] for e in events] == ["success"] for events in results)
    [counts] = emu.control.rates()["accounts"].values()
    polls = counts["routes"][SPEECH_QUERY]["accepted"]
    assert polls >= 8 * 3
    assert counts["connections"] <= 4 < polls, (counts["connections"], polls)
    assert f"minimax:{conn_id}" not in pool.open_sessions()


async def test_the_session_closes_when_the_last_trigger_using_it_ends(emu, conn_id):
    hook = MiniMaxHook()
    quick = hook.create_speech("t", "speech-2.8-hd", "v")
    emu.control.push_scenario("minimax", outcome="never")
    slow = hook.create_speech("t", "speech-2.8-hd", "v")
    key = f"minimax:{conn_id}"

    slow_run = asyncio.create_task(run(trigger(slow, conn_id, deadline=3)))
    assert [e["status"] for e in await run(trigger(quick, conn_id))] == ["success"]
    session = pool.shared_session(key)
    assert session is not None and not session.closed and pool.open_sessions()[key] == 1  # the slow one holds it
    assert [e["status"] for e in await slow_run] == ["timeout"]
    assert session.closed and key not in pool.open_sessions()


async def test_a_call_outside_a_trigger_holds_the_session_only_for_the_call(emu, conn_id):
    hook = MiniMaxHook(conn_id)
    task_id = MiniMaxHook().create_speech("t", "speech-2.8-hd", "v")
    await hook.aquery_task("speech", task_id)
    assert f"minimax:{conn_id}" not in pool.open_sessions()
