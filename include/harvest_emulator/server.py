"""Run the emulator in a background thread with its own event loop, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from functools import cached_property
from typing import Any

from aiohttp import web

from .app import build_app
from .control import EmulatorControl
from .state import EmulatorState

log = logging.getLogger(__name__)

#: seconds a request in progress gets to finish once stop() begins, and again once cancelled (aiohttp waits twice)
GRACE_SECONDS = 1.0


class EmulatorServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, **config_overrides: Any) -> None:
        self.host, self.port = host, port
        self.state = EmulatorState(**config_overrides)
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @cached_property
    def control(self) -> EmulatorControl:
        """A control client for this server (available once started)."""
        return EmulatorControl(self.url)

    def start(self) -> EmulatorServer:
        """Start listening; returns once the port is bound (errors surface here, not in the thread)."""
        self._thread = threading.Thread(target=self._loop.run_forever, name="harvest-emulator", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=30)
        return self

    async def _serve(self) -> None:
        self._runner = web.AppRunner(build_app(self.state), access_log=None, shutdown_timeout=GRACE_SECONDS)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        self.url = f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop within seconds whatever the clients do (idle keep-alives, long polls, bodies read halfway):
        stop listening, give requests in progress ``GRACE_SECONDS``, cancel them, then drop every connection."""
        if self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(self._shutdown(self._runner), self._loop)
            try:
                future.result(timeout=timeout)
            except concurrent.futures.TimeoutError:
                log.warning("the emulator did not shut down within %.0f s; stopping its loop anyway", timeout)
                future.cancel()
            self._runner = None
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=timeout)
            if not self._thread.is_alive():
                self._loop.close()
            self._thread = None

    @staticmethod
    async def _shutdown(runner: web.AppRunner) -> None:
        server = runner.server
        transports = [c.transport for c in getattr(server, "connections", [])] if server else []
        await runner.cleanup()
        for transport in transports:  # anything aiohttp left open (a handler that swallowed its cancellation)
            if transport is not None and not transport.is_closing():
                transport.abort()
        current = asyncio.current_task()
        leftovers = [t for t in asyncio.all_tasks() if t is not current]
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.wait(leftovers, timeout=GRACE_SECONDS)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
