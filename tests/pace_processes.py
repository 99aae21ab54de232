"""Processes standing in for triggerers: each queries one MiniMax speech task from many coroutines at once.

Shared by ``tests/integration/core/test_pace.py`` and ``benchmarks/bench_shared_budget.py``: both start the processes,
let them import and build their hook first, then release them together so their calls overlap.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping

_CALLER = """
import asyncio, json, sys, time
from artifact_harvest.minimax.hook import MiniMaxHook

conn_id, task_id, callers, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
hook = MiniMaxHook(conn_id)
print("ready", flush=True)
sys.stdin.readline()

async def main():
    async def one():
        for _ in range(calls):
            await hook.aquery_task("speech", task_id)
    started = time.time()
    await asyncio.gather(*(one() for _ in range(callers)))
    print(json.dumps({"start": started, "end": time.time()}), flush=True)

asyncio.run(main())
"""


def query_together(conn_id: str, task_id: str, *, processes: int = 2, callers: int, calls: int,
                   env: Mapping[str, str], timeout: float) -> list[dict[str, float]]:
    """Run ``processes`` processes of ``callers`` coroutines making ``calls`` queries each; their time spans.

    Raises ``RuntimeError`` when a process does not start or fails; kills what is left on the way out.
    """
    argv = [sys.executable, "-c", _CALLER, conn_id, task_id, str(callers), str(calls)]
    procs = [subprocess.Popen(argv, env=dict(env), text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
             for _ in range(processes)]
    try:
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a querying process did not start")
        for proc in procs:  # released only once all are ready, so their calls overlap
            proc.stdin.write("go\n")
            proc.stdin.flush()
        spans = []
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise RuntimeError(f"a querying process failed ({proc.returncode})")
            spans.append(json.loads(out.strip().splitlines()[-1]))
        return spans
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
