"""``make bench``: N = 100, 500, 1,000 concurrent FlightHub 2 model-ready waits on one event loop (deferred) vs
the same waits in poke mode, measured in one run against the emulator.

Deferred: one process imports Airflow and the provider, builds N ``FlightHub2ModelReadyTrigger`` and runs them
all on one asyncio loop, as the triggerer does; the parent samples that process's RSS and CPU, and the
emulator's request log gives every poll's time, hence the real poll interval per wait.
Poke: one process runs one wait the way a poking sensor does (sync hook call, same status function, sleep),
which is what each worker slot does; N waits need N slot-processes, and with ``--parallelism P`` slots they
run P at a time. Figures per slot are measured, totals for N are that times the slots.

Targets: 1,000 deferred waits under 400 MB RSS with polls within 10 % of the interval; 0 worker slots.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".bench" / "concurrent_waits.json"
RESULT = "RESULT "  # prefix of the child's last output line
STAGES = 5  # the emulator's successful model: queued, running, zipping x3 -> ready at stage 4


# -- the measured processes --------------------------------------------------------------------------
def child_deferred(model_uuids: list[str], interval: float, deadline: float) -> None:
    from artifact_harvest.flighthub2.triggers import FlightHub2ModelReadyTrigger

    async def first_event(trigger) -> str:
        async for event in trigger.run():
            return event.payload["status"]
        return "none"

    async def main() -> list[str]:
        triggers = [FlightHub2ModelReadyTrigger(model_uuid=u, end_time=deadline, poll_interval=interval)
                    for u in model_uuids]
        return await asyncio.gather(*(first_event(t) for t in triggers))

    statuses = asyncio.run(main())
    print(RESULT + json.dumps({s: statuses.count(s) for s in set(statuses)}), flush=True)


def child_poke(model_uuid: str, interval: float, deadline: float) -> None:
    from artifact_harvest.flighthub2.hook import FlightHub2Hook
    from artifact_harvest.flighthub2.status import judge_open_model
    from artifact_harvest.core.polling import Phase

    hook = FlightHub2Hook()
    while time.time() < deadline:
        if judge_open_model(hook.open_model(model_uuid), "zip_file_key").phase is not Phase.RUNNING:
            print(RESULT + json.dumps({"success": 1}), flush=True)
            return
        time.sleep(interval)
    print(RESULT + json.dumps({"timeout": 1}), flush=True)


# -- the parent: emulator, sampling, figures ---------------------------------------------------------
def add_models(state, n: int) -> list[str]:
    """N models that reconstruct for ``STAGES - 1`` stages, then are ready (fixed size, no download here)."""
    from harvest_emulator import flighthub2 as fh2
    from harvest_emulator.jobs import Job

    uuids = []
    for _ in range(n):
        model_uuid = str(uuid.uuid4())
        blob = state.blobs.create(1024, filename=f"{model_uuid}.zip")
        state.add_job(fh2.PROVIDER, Job(model_uuid, fh2._stages(None, 9), data={
            "resource_uuid": "bench", "model_type": 1, "size": blob.size, "blob_id": blob.blob_id,
            "error_code": 0}))
        uuids.append(model_uuid)
    return uuids


def run_measured(args: list[str], env: dict[str, str], model_uuids: list[str]) -> dict:
    """Run one child, sampling RSS (its whole tree) every 0.1 s; returns peak RSS, CPU seconds and its output."""
    OUT.parent.mkdir(exist_ok=True)
    uuids_file, log = OUT.with_name("model_uuids.txt"), OUT.with_name(f"child{args[0]}.log")
    uuids_file.write_text("\n".join(model_uuids))
    with log.open("w") as out:  # never a pipe: the triggers' log lines would fill it and block the child
        proc = subprocess.Popen([sys.executable, __file__, *args, str(uuids_file)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    ps = psutil.Process(proc.pid)
    peak, cpu, started = 0, 0.0, time.monotonic()
    while proc.poll() is None:
        try:
            tree = [ps, *ps.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
            times = ps.cpu_times()
            cpu = times.user + times.system
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    if proc.wait() != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{log.read_text()[-3000:]}")
    result = next(line for line in reversed(log.read_text().splitlines()) if line.startswith(RESULT))
    return {"peak_rss_mb": peak / 1e6, "cpu_seconds": cpu, "wall_seconds": time.monotonic() - started,
            "result": json.loads(result[len(RESULT):])}


def poll_intervals(requests_seen: list[dict], model_uuids: set[str]) -> list[float]:
    times: dict[str, list[float]] = {}
    for entry in requests_seen:
        model_uuid = entry["path"].rstrip("/").rsplit("/", 1)[-1]
        if entry["method"] == "GET" and model_uuid in model_uuids:
            times.setdefault(model_uuid, []).append(entry["time"])
    return [b - a for ts in times.values() for a, b in zip(sorted(ts), sorted(ts)[1:])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500,1000")
    parser.add_argument("--interval", type=float, default=5.0, help="configured poll interval (s)")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds until each model is ready")
    parser.add_argument("--parallelism", type=int, default=16, help="worker slots for the poke comparison")
    args = parser.parse_args()

    from harvest_emulator.credentials import connection_env
    from harvest_emulator.server import EmulatorServer

    server = EmulatorServer(polls_per_stage=0, stage_seconds=args.wait / (STAGES - 1)).start()
    env = {**os.environ, **connection_env(server.url), "PYTHONPATH": str(ROOT)}
    results: dict = {"interval_s": args.interval, "wait_s": args.wait, "parallelism": args.parallelism, "runs": []}
    try:
        # poke: one slot, one wait, measured
        [model_uuid] = add_models(server.state, 1)
        deadline = time.time() + args.wait * 3
        slot = run_measured(["--child-poke", str(args.interval), str(deadline)], env, [model_uuid])
        results["poke_slot"] = slot
        for n in map(int, args.sizes.split(",")):
            server.state.requests.clear()
            uuids = add_models(server.state, n)
            deadline = time.time() + args.wait * 3
            measured = run_measured(["--child-deferred", str(args.interval), str(deadline)], env, uuids)
            intervals = poll_intervals(server.state.requests, set(uuids))
            mean = statistics.fmean(intervals)
            slots = min(n, args.parallelism)
            results["runs"].append({
                "n": n,
                "deferred": {
                    **measured,
                    "cpu_percent_of_one_core": 100 * measured["cpu_seconds"] / measured["wall_seconds"],
                    "worker_slots_while_waiting": 0,
                    "polls": len(intervals) + n,
                    "mean_interval_s": mean,
                    "interval_error_pct": 100 * (mean - args.interval) / args.interval,
                    "p95_interval_s": statistics.quantiles(intervals, n=20)[-1],
                },
                "poke": {
                    "worker_slots_while_waiting": slots,
                    "rss_mb": slots * slot["peak_rss_mb"],
                    "cpu_seconds": n * slot["cpu_seconds"],
                    "wall_seconds_for_all": math.ceil(n / slots) * slot["wall_seconds"],
                },
            })
    finally:
        server.stop()

    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print_table(results)
    last = results["runs"][-1]["deferred"]
    all_done = all(run["deferred"]["result"] == {"success": run["n"]} for run in results["runs"])
    ok = all_done and last["peak_rss_mb"] < 400 and abs(last["interval_error_pct"]) <= 10
    print(f"\nevery wait saw its model ready: {all_done}")
    print(f"target (1,000 waits < 400 MB, polls within 10 %): {'met' if ok else 'NOT met'}; details in {OUT}")
    return 0 if ok else 1


def print_table(results: dict) -> None:
    slot = results["poke_slot"]
    print(f"\nconcurrent waits: poll every {results['interval_s']:g} s, each wait {results['wait_s']:g} s; "
          f"poke mode with {results['parallelism']} worker slots (one slot measured: "
          f"{slot['peak_rss_mb']:.0f} MB RSS, {slot['cpu_seconds']:.2f} CPU-s per wait)")
    header = ("N", "deferred RSS MB", "CPU-s", "CPU %", "slots", "mean poll s", "error %", "p95 s",
              "| poke slots", "poke RSS MB", "poke CPU-s", "poke wall s")
    rows = []
    for run in results["runs"]:
        d, p = run["deferred"], run["poke"]
        rows.append((str(run["n"]), f"{d['peak_rss_mb']:.0f}", f"{d['cpu_seconds']:.1f}",
                     f"{d['cpu_percent_of_one_core']:.0f}", str(d["worker_slots_while_waiting"]),
                     f"{d['mean_interval_s']:.2f}", f"{d['interval_error_pct']:+.1f}", f"{d['p95_interval_s']:.2f}",
                     f"| {p['worker_slots_while_waiting']}", f"{p['rss_mb']:.0f}", f"{p['cpu_seconds']:.1f}",
                     f"{p['wall_seconds_for_all']:.0f}"))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("--child-deferred", "--child-poke"):
        interval, deadline = float(sys.argv[2]), float(sys.argv[3])
        lines = Path(sys.argv[4]).read_text().split()
        if sys.argv[1] == "--child-deferred":
            child_deferred(lines, interval, deadline)
        else:
            child_poke(lines[0], interval, deadline)
        sys.exit(0)
    sys.exit(main())
