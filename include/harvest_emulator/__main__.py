"""``python -m harvest_emulator``: the emulator in the foreground (demo, docker-compose, manual poking)."""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import web

from .app import build_app
from .state import EmulatorState


async def _run(host: str, port: int, state: EmulatorState) -> None:
    runner = web.AppRunner(build_app(state), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    print(f"emulator listening on http://{bound_host}:{bound_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m harvest_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--stage-seconds", type=float, default=2.0, help="wall-clock seconds per job stage")
    parser.add_argument("--polls-per-stage", type=int, default=0, help="> 0: advance jobs by polls, not time")
    args = parser.parse_args()
    state = EmulatorState(stage_seconds=args.stage_seconds, polls_per_stage=args.polls_per_stage)
    asyncio.run(_run(args.host, args.port, state))


if __name__ == "__main__":
    main()
