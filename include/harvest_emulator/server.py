"""Run the emulator in a background thread with its own event loop, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import threading
from functools import cached_property
from typing import Any

from aiohttp import web

from .app import build_app
from .control import EmulatorControl
from .state import EmulatorState


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
        self._runner = web.AppRunner(build_app(self.state), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        self.url = f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
            self._runner = None
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._thread = None
            self._loop.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
