"""qianfan routes (written by the provider issue)."""

from __future__ import annotations

from aiohttp import web

from .state import EmulatorState


def register(app: web.Application, state: EmulatorState) -> None:
    """Routes added by the provider issue."""
