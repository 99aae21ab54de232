"""Two triggerers, one MiniMax account: does the account stay within its documented 10 queries per second?

Two separate Python processes (each one event loop, standing in for two triggerers) run ``--callers`` waits
each, every wait making ``--calls`` speech queries through ``MiniMaxHook`` against the emulator, which enforces
10 per second per account and answers past it with MiniMax's own 1002. Three modes, interleaved per round:

- ``unpaced``: the connection's ``rate_limit_rps`` far above the limit (what every wait did before pacing);
- ``per-process``: the documented 10/s in each process, no Redis (each paces alone: together they exceed it);
- ``redis``: the documented 10/s shared through Redis (``[artifact_harvest] rate_limit_url``).

Printed per mode: accepted and refused queries, the busiest second the emulator saw, the wall time; median
(min-max) across ``--rounds``, and the refusal ratio against ``unpaced`` in the same run.
Needs Redis on 127.0.0.1:6379 (``.ci/run``'s machine has it; ``docker compose`` starts one).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "include"), str(ROOT)]
from tests.pace_processes import query_together  # noqa: E402

LIMIT = 10  # MiniMax's documented queries per second for the speech query
REDIS_URL = "redis://127.0.0.1:6379/0"

def _run_mode(emulator, mode: str, task_id: str, callers: int, calls: int) -> dict:
    conn = json.loads(os.environ["AIRFLOW_CONN_MINIMAX_DEFAULT"])
    conn_id = f"minimax_bench_{uuid.uuid4().hex[:8]}"  # a fresh pace per round
    conn["extra"] = {**conn.get("extra", {}), "rate_limit_rps": 1000 if mode == "unpaced" else LIMIT}
    env = {**os.environ, f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "include")]),
           # a refusal is retried inside the wait; enough attempts that no query gives up in the unpaced mode
           "AIRFLOW__ARTIFACT_HARVEST__RETRY_ATTEMPTS": "50", "AIRFLOW__ARTIFACT_HARVEST__RETRY_MAX_DELAY": "2"}
    if mode == "redis":
        env["AIRFLOW__ARTIFACT_HARVEST__RATE_LIMIT_URL"] = REDIS_URL
    emulator.control.clear_rates()
    try:
        spans = query_together(conn_id, task_id, callers=callers, calls=calls, env=env, timeout=600)
    except RuntimeError as exc:
        raise RuntimeError(f"{mode}: {exc}") from exc
    finally:
        if mode == "redis":
            import redis

            redis.Redis.from_url(REDIS_URL).delete(f"artifact_harvest:pace:minimax:{conn_id}")
    [counts] = [v for k, v in emulator.control.rates()["accounts"].items() if k.startswith("minimax:")]
    return {"accepted": counts["accepted"], "refused": counts["refused"], "max_per_second": counts["max_per_second"],
            "seconds": max(s["end"] for s in spans) - min(s["start"] for s in spans)}


def _cell(values: list[float], fmt: str = "{:.0f}") -> str:
    med = statistics.median(values)
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))})" if len(values) > 1 \
        else fmt.format(med)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=20, help="waits per process")
    parser.add_argument("--calls", type=int, default=5, help="queries per wait")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import redis

    redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()  # fails loudly without Redis
    home = Path(tempfile.mkdtemp(prefix="bench-budget-"))
    os.environ.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    from harvest_emulator.credentials import connection_env
    from harvest_emulator.server import EmulatorServer
    from artifact_harvest.minimax.hook import MiniMaxHook

    modes = ("unpaced", "per-process", "redis")
    results: dict[str, list[dict]] = {mode: [] for mode in modes}
    with EmulatorServer(polls_per_stage=10**6) as emulator:  # the speech task never finishes: every query counts
        os.environ.update(connection_env(emulator.url))
        task_id = MiniMaxHook().create_speech("bench", "speech-2.8-hd", "v")
        emulator.control.configure(rate_limits={"minimax": {"rps": LIMIT}})
        for _ in range(args.rounds):
            for mode in modes:
                results[mode].append(_run_mode(emulator, mode, task_id, args.callers, args.calls))
    total = 2 * args.callers * args.calls
    print(f"\nTwo processes x {args.callers} waits x {args.calls} queries = {total} accepted queries needed, "
          f"one MiniMax account limited to {LIMIT}/s; median (min-max) of {args.rounds} rounds")
    print(f"{'mode':<12} {'accepted':>10} {'refused':>16} {'busiest second':>16} {'seconds':>16} {'refusals/unpaced':>17}")
    base = statistics.median(r["refused"] for r in results["unpaced"]) or 1
    worst_redis = 0
    for mode in modes:
        rows = results[mode]
        refused = [r["refused"] for r in rows]
        print(f"{mode:<12} {_cell([r['accepted'] for r in rows]):>10} {_cell(refused):>16} "
              f"{_cell([r['max_per_second'] for r in rows]):>16} {_cell([r['seconds'] for r in rows], '{:.1f}'):>16} "
              f"{statistics.median(refused) / base:>17.2f}")
        if mode == "redis":
            worst_redis = max(r["max_per_second"] for r in rows)
    verdict = "PASS" if worst_redis <= LIMIT else "FAIL"
    print(f"target: with Redis the account's busiest second stays <= {LIMIT}: {verdict} (worst {worst_redis})")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
