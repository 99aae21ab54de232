"""Where a failed attempt failed: while connecting (the request provably never left) or after sending.

``core.http`` resends a call that may not be resent only when :func:`never_reached` says so; requests'
exception classes alone cannot tell, so the sync session's connections record whether a request byte was
written (:func:`recording_session`, :func:`watch_wire`). docs/resend-rule.md has the table and the reasons.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aiohttp
import requests
import requests.adapters
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from artifact_harvest.core.session import plain_session


@dataclass
class Wire:
    """What one synchronous attempt did on the wire: ``sent`` once a request byte went to a connected socket."""

    sent: bool = False


_WIRE: ContextVar[Wire | None] = ContextVar("artifact_harvest_http_wire", default=None)


@contextmanager
def watch_wire() -> Iterator[Wire]:
    """Record, for the requests made inside, whether any request byte was written (see ``_SendRecorder``)."""
    wire = Wire()
    token = _WIRE.set(wire)
    try:
        yield wire
    finally:
        _WIRE.reset(token)


class _SendRecorder:
    """urllib3 connection mixin: connect (and finish the TLS handshake) first, then note the request is on its way.

    Every request byte urllib3 writes goes through ``send``; a failure before the note (in ``connect``) proves
    the request never left, whatever exception class requests makes of it.
    """

    sock: Any

    def send(self, data: Any) -> None:
        if self.sock is None:
            self.connect()  # type: ignore[attr-defined]  # what http.client does first, made explicit
        wire = _WIRE.get()
        if wire is not None:
            wire.sent = True
        super().send(data)  # type: ignore[misc]


class _HTTPConnection(_SendRecorder, HTTPConnection):
    pass


class _HTTPSConnection(_SendRecorder, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class PhaseAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter whose connections record whether the request was written (for ``never_reached``)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def recording_session() -> requests.Session:
    """A plain session (``core.session``) whose http(s) connections record the phase (``PhaseAdapter``)."""
    session = plain_session()
    for prefix in ("http://", "https://"):
        session.mount(prefix, PhaseAdapter())
    return session


def never_reached(exc: BaseException, *, sent: bool | None = None) -> bool:
    """True when a transport failure happened while connecting, so the request provably never left.

    requests (``sent`` from ``PhaseAdapter``): a ``ConnectionError`` (``SSLError`` included) or ``Timeout``
    raised before any request byte was written. requests raises ``SSLError`` for a failed handshake and for
    a broken record while reading the answer alike, so the exception class alone cannot tell; without
    ``sent`` only ``ConnectTimeout`` counts. aiohttp: ``ClientConnectorError`` (refused, DNS, TLS handshake,
    certificate) and ``ConnectionTimeoutError``, both raised only while connecting; ``ClientOSError`` (a broken
    TLS record) and ``ServerDisconnectedError`` come after sending. Everything else leaves the outcome unknown.
    """
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return True
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if sent is False and isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return True
    return False
