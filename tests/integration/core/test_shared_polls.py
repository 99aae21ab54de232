"""Shared polls against the emulator: many waits in one event loop, one status call per key and interval."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

from artifact_harvest.core.shared_poll import SharedPolls, shared_polls
from artifact_harvest.flighthub2.hook import FlightHub2Hook
from artifact_harvest.flighthub2.triggers import MIN_WALK_CALLS, FlightHub2ModelReadyTrigger
from artifact_harvest.minimax.hook import MiniMaxHook
from artifact_harvest.minimax.triggers import MiniMaxTaskTrigger

from tests.integration.flighthub2.test_hook import upload

QUERY = "/v1/query/video_generation"
RUNNING = "/open_model/models/running"


def fast_connection(monkeypatch, conn_id: str, default: str) -> str:
    """``default``'s connection with a pace far above these tests' load: they count calls, not pacing."""
    conn = json.loads(os.environ[f"AIRFLOW_CONN_{default.upper()}"])
    conn["extra"] = {**(conn.get("extra") or {}), "rate_limit_rps": 1000}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


async def until(condition, deadline: float = 10.0) -> None:
    """Poll ``condition`` every 10 ms until true or fail at the deadline."""
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "condition not met before the deadline"
        await asyncio.sleep(0.01)


async def one_event(trigger) -> dict:
    events = [event.payload async for event in trigger.run()]
    assert len(events) == 1, events
    return events[0]


def minimax_wait(task_id: str, interval: float) -> MiniMaxTaskTrigger:
    return MiniMaxTaskTrigger(minimax_task_id=task_id, end_time=time.time() + 30, poll_interval=interval)


async def test_fifty_waits_on_one_task_share_one_query_per_interval(emu):
    task_id = MiniMaxHook().create_video("p", "T2V-01")  # Preparing, Queueing, Processing, Success: a poll each
    interval = 0.3
    waits = [asyncio.create_task(one_event(minimax_wait(task_id, interval))) for _ in range(50)]
    await until(lambda: shared_polls().waits(("minimax", "minimax_default", "video", task_id)) == 50)
    quitter = waits.pop()  # ends early: the others keep polling
    quitter.cancel()
    events = await asyncio.gather(*waits)
    assert quitter.cancelled()
    assert [e["status"] for e in events] == ["success"] * 49 and {e["task_id"] for e in events} == {task_id}
    sent = emu.control.requests(QUERY)
    assert len(sent) == 4  # one query per interval for all 50 waits: the task advanced once per query
    gaps = [b["time"] - a["time"] for a, b in zip(sent, sent[1:])]
    assert min(gaps) >= interval, gaps  # the next call an interval after the answer came
    assert len(shared_polls()) == 0  # the last wait to end removed the entry


async def test_waits_with_sharing_off_poll_each(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW__ARTIFACT_HARVEST__SHARED_POLLS", "False")
    conn_id = fast_connection(monkeypatch, "minimax_fast", "minimax_default")
    emu.control.configure(polls_per_stage=0, stage_seconds=0.4)  # by the clock: Success after 1.2 s
    task_id = MiniMaxHook().create_video("p", "T2V-01")
    results = await asyncio.gather(*(one_event(MiniMaxTaskTrigger(
        minimax_task_id=task_id, conn_id=conn_id, end_time=time.time() + 30, poll_interval=0.3)) for _ in range(5)))
    assert {e["status"] for e in results} == {"success"}
    assert len(emu.control.requests(QUERY)) >= 5 * 4  # every wait polled on its own, as before issue 19


async def test_a_wait_cancelled_while_fetching_for_the_others_hands_over(emu):
    """The wait fetching for everyone is cancelled mid-request: a waiting one fetches at once, none is lost."""
    task_id = MiniMaxHook().create_video("p", "T2V-01")
    emu.control.add_fault(QUERY, kind="hang", seconds=5, times=1)
    key = ("minimax", "minimax_default", "video", task_id)
    leader = asyncio.create_task(one_event(minimax_wait(task_id, 0.2)))
    await until(lambda: len(emu.control.requests(QUERY)) == 1)  # its query hangs in the emulator
    others = [asyncio.create_task(one_event(minimax_wait(task_id, 0.2))) for _ in range(3)]
    await until(lambda: shared_polls().awaiting(key) == 3)  # all three wait for the leader's answer
    leader.cancel()
    cancelled_at = time.monotonic()
    events = await asyncio.gather(*others)
    assert time.monotonic() - cancelled_at < 4  # not after the hung answer (5 s): one of them asked again
    assert [e["status"] for e in events] == ["success"] * 3
    assert len(emu.control.requests(QUERY)) == 1 + 4  # the lost one, then one per stage for all three
    assert len(shared_polls()) == 0


async def test_errors_are_shared_and_each_wait_counts_its_own(emu):
    task_id = MiniMaxHook().create_video("p", "T2V-01")
    emu.control.add_fault(QUERY, kind="status", status=502, times=-1)
    triggers = [MiniMaxTaskTrigger(minimax_task_id=task_id, end_time=time.time() + 30, poll_interval=0.2,
                                   max_transient_errors=1) for _ in range(10)]
    events = await asyncio.gather(*(one_event(t) for t in triggers))
    assert {e["status"] for e in events} == {"error"} and all(e["retryable"] for e in events)
    # 2 failed polls per wait, each of the hook's retried attempts: shared, so far fewer than 10 waits' worth
    assert len(emu.control.requests(QUERY)) <= 2 * 5
    assert len(shared_polls()) == 0


def test_registry_without_a_joined_wait_just_fetches():
    polls = SharedPolls()
    calls = []

    async def fetch():
        calls.append(1)
        return len(calls)

    async def main():
        assert await polls.get(("k",), fetch, 60) == 1
        assert await polls.get(("k",), fetch, 60) == 2  # not joined: nothing is kept
        async with polls.joined(("k",)):
            assert await polls.get(("k",), fetch, 60) == 3
            assert await polls.get(("k",), fetch, 60) == 3  # joined: reused within max_age
            assert await polls.get(("k",), fetch, 0) == 4
        assert len(polls) == 0

    asyncio.run(main())


# -- FlightHub 2: one walk of the running list per interval, details only for models that left it -----------
def walks(sent: list[dict]) -> list[list[dict]]:
    """The running-list requests grouped into walks (each starts at page 1)."""
    grouped: list[list[dict]] = []
    for request in sent:
        if request["query"].get("page") == "1":
            grouped.append([])
        grouped[-1].append(request)
    return grouped


async def test_thirty_flighthub2_waits_cost_the_list_pages_plus_the_finished_models(emu, monkeypatch):
    stage = 0.5  # queued, running, then done (off the list): zip 0, zip 1, ready at 4 stages
    emu.control.configure(polls_per_stage=0, stage_seconds=stage, flighthub2_page_size=10)
    hook = FlightHub2Hook()
    resource = upload(hook)
    uuids = [hook.start_reconstruction(resource, {"2d": {}})["2d"] for _ in range(15)]
    await asyncio.sleep(stage)  # a second group, half a stage later: they leave the list at another time
    uuids += [hook.start_reconstruction(resource, {"2d": {}})["2d"] for _ in range(15)]
    created = {j["job_id"]: j["created_at"] for j in emu.control.jobs("flighthub2")}
    emu.control.clear_requests()
    interval = 0.3
    conn_id = fast_connection(monkeypatch, "flighthub2_fast", "flighthub2_default")
    triggers = [FlightHub2ModelReadyTrigger(model_uuid=u, conn_id=conn_id, end_time=time.time() + 30,
                                            poll_interval=interval) for u in uuids]
    events = await asyncio.gather(*(one_event(t) for t in triggers))
    assert [e["status"] for e in events] == ["success"] * 30 and [e["model_uuid"] for e in events] == uuids
    assert len(shared_polls()) == 0

    every = emu.control.requests("/open_model/models/")
    listing = walks([r for r in every if r["path"].endswith(RUNNING)])
    assert len(listing) >= 3
    for walk in listing:
        pages = [int(r["query"]["page"]) for r in walk]
        assert pages == list(range(1, len(pages) + 1))  # page by page up to the empty one
        assert len(pages) <= 4  # at most 30 running at page size 10: 3 pages and the empty one
    starts = [walk[0]["time"] for walk in listing]
    assert min(b - a for a, b in zip(starts, starts[1:])) >= interval
    details = [r for r in every if not r["path"].endswith(RUNNING)]
    # the first waits to start ask for their details: until more than MIN_WALK_CALLS have joined, a walk costs
    # more; their requests may reach the emulator after the first walk's first page (separate connections)
    opening = [r for r in details[:MIN_WALK_CALLS] if r["time"] <= listing[0][-1]["time"]]
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else float("inf")
        window = [r["path"].rsplit("/", 1)[-1] for r in details if start <= r["time"] < end and r not in opening]
        # only models off the list when the walk ran (2 stages after creation), or as many listed ones as left
        # the list during the walk (the later pages shift: FlightHub 2 pages by position)
        walk_start, walk_end = listing[i][0]["time"], listing[i][-1]["time"]
        left = {u: created[u] + 2 * stage for u in uuids}
        early = [u for u in window if left[u] > walk_end + 0.05]
        assert len(early) <= sum(walk_start - 0.05 <= left[u] <= walk_end + 0.05 for u in uuids), (i, early)
    # while off the list a model is asked for once per interval until it is ready (stages 2 and 3: ~1 s)
    per_model = {u: [r["time"] for r in details if r["path"].endswith(u)] for u in uuids}
    assert all(1 <= len(t) <= 2 * stage / interval + 2 for t in per_model.values()), per_model
    assert all(b - a >= interval for t in per_model.values() for a, b in zip(t, t[1:])), per_model
    assert len(every) < 30 * len(listing) * 0.7  # below one call per wait per interval


async def test_few_flighthub2_waits_poll_the_details(emu):
    """Two waits: a walk (page 1 and the empty page) would cost as much as their two detail calls."""
    hook = FlightHub2Hook()
    resource = upload(hook)
    uuids = [hook.start_reconstruction(resource, {"3d": {}})["3d"] for _ in range(2)]
    emu.control.clear_requests()
    events = await asyncio.gather(*(one_event(FlightHub2ModelReadyTrigger(
        model_uuid=u, end_time=time.time() + 30, poll_interval=0.05)) for u in uuids))
    assert [e["status"] for e in events] == ["success"] * 2
    assert emu.control.requests(RUNNING) == []
    assert all(len(emu.control.requests(f"/open_model/models/{u}")) == 5 for u in uuids)


@pytest.mark.parametrize("shared", [True, False])
def test_serialization_is_unchanged(shared, monkeypatch):
    """A trigger deferred before shared polls existed resumes from the same kwargs, and round-trips."""
    monkeypatch.setenv("AIRFLOW__ARTIFACT_HARVEST__SHARED_POLLS", str(shared))
    old = {"model_uuid": "m", "file_id_field": "zip_file_key", "stop_on_kill": True, "conn_id": "flighthub2_default",
           "api_version": "v0.1", "end_time": 1.0, "poll_interval": 5.0, "max_transient_errors": 5}
    path, kwargs = FlightHub2ModelReadyTrigger(**old).serialize()
    assert path == "artifact_harvest.flighthub2.triggers.FlightHub2ModelReadyTrigger" and kwargs == old
