"""One writer per artifact key across hosts: a lease kept in the archive store itself.

The lease is a small JSON object ``<root>/<provider>/<key>/.lease.<generation>`` (owner: host, pid, task
instance and try, a random token; renewal count and times; never a secret). Taking it is an exclusive create
(``Store.put_text``: ``os.link`` on local disk or NFS, ``If-None-Match: *`` on S3, mode ``"xb"`` on fsspec),
so of two hosts exactly one gets generation ``n``. A stale lease is never overwritten: it is taken over by
creating generation ``n + 1``, with the same exclusive create, so two takers cannot both win either.

- The holder renews (a heartbeat thread rewrites its own object every ``lease_renew_interval``) and loses the
  lease when a newer generation appears, its object names another holder, or its renewals fail for
  ``lease_expiry``; ``check()`` raises then.
- A waiter polls every ``lease_poll_interval`` (the archive's manifest first: once it exists, nothing is
  downloaded) and calls the lease stale when it has seen no renewal for ``lease_expiry`` by its own clock (no
  clock needs to agree across hosts); a released lease is taken at once. The wait is bounded by the holder's liveness, and in total by
  ``lease_wait_timeout``.
- Release after archiving deletes the lease objects (the manifest now answers every later run); release
  without archiving marks the lease released so a waiter takes over at once.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from airflow.sdk import ObjectStoragePath

from artifact_harvest.core.errors import ProviderError, TransientProviderError
from artifact_harvest.core.http import _conf_float

log = logging.getLogger(__name__)

PREFIX = ".lease."


class LeaseStore(Protocol):
    """What a lease needs from the archive store (every store implements it)."""

    def read_text(self, path: ObjectStoragePath) -> str | None: ...

    def put_text(self, path: ObjectStoragePath, text: str) -> bool: ...

    def replace_text(self, path: ObjectStoragePath, text: str) -> None: ...

    def list_names(self, folder: ObjectStoragePath, prefix: str) -> list[str]: ...

    def delete(self, path: ObjectStoragePath) -> None: ...


class LeaseBusy(ProviderError):
    """Another host held the key's lease (renewing it) for longer than ``lease_wait_timeout``; retryable."""


class LeaseLost(TransientProviderError):
    """Our lease was taken over (we were presumed dead); nothing was archived by us, a retry waits again."""


@dataclass(frozen=True)
class LeaseSettings:
    renew_interval: float = 30.0
    expiry: float = 180.0
    wait_timeout: float = 6 * 3600.0
    poll_interval: float = 10.0
    log_every: float = 60.0

    @classmethod
    def from_config(cls) -> LeaseSettings:
        """``[artifact_harvest] lease_renew_interval``, ``lease_expiry``, ``lease_wait_timeout`` (else
        ``lock_timeout``), ``lease_poll_interval`` (a waiter's look at the store; at most a quarter of the expiry)."""
        renew, expiry = _conf_float("lease_renew_interval", cls.renew_interval), _conf_float("lease_expiry", cls.expiry)
        wait = _conf_float("lease_wait_timeout", _conf_float("lock_timeout", cls.wait_timeout))
        poll = min(_conf_float("lease_poll_interval", cls.poll_interval), expiry / 4)
        return cls(renew, expiry, wait, poll, _conf_float("lease_log_every", cls.log_every))


def owner_of(context: Any) -> dict:
    """Who holds a lease: host, pid and the task instance (ids only, nothing secret)."""
    ti = context.get("ti") if hasattr(context, "get") else None
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "ti": {name: getattr(ti, name, None) for name in ("dag_id", "task_id", "run_id", "map_index", "try_number")}
        if ti is not None else None,
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class KeyLease:
    """The lease of one artifact folder; ``acquire()`` then ``check()`` before the final write, ``release()``."""

    def __init__(self, store: LeaseStore, folder: ObjectStoragePath, *, provider: str, label: str,
                 owner: dict | None = None, settings: LeaseSettings | None = None,
                 is_done: Callable[[], bool] = lambda: False) -> None:
        self.store, self.folder, self.provider, self.label = store, folder, provider, label
        self.settings = settings or LeaseSettings.from_config()
        self.is_done = is_done
        self.record = {**(owner or {}), "token": secrets.token_hex(16)}
        self.generation: int | None = None
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_renewal = 0.0

    # -- the waiting side ------------------------------------------------------------------------------
    def acquire(self) -> bool:
        """Hold the lease (True), or return False once ``is_done()`` (another holder archived the key).

        Raises ``LeaseBusy`` after ``lease_wait_timeout`` of a lease that kept being renewed."""
        s = self.settings
        started = time.monotonic()
        last_log: float | None = None
        seen: tuple[int, str] | None = None
        seen_since = started
        while True:
            if self.is_done():
                return False
            generations = self._generations()
            current = max(generations, default=-1)
            text = self.store.read_text(self._path(current)) if current >= 0 else None
            take: int | None = 0 if current < 0 else None
            if current >= 0 and text is not None:
                record = _parse(text)
                now = time.monotonic()
                if record.get("released"):
                    take = current + 1
                elif seen != (current, text):
                    seen, seen_since = (current, text), now
                elif now - seen_since >= s.expiry:
                    log.warning("%s: the lease of %s (generation %d) was not renewed for %.0fs; taking it over",
                                self.label, _who(record), current, now - seen_since)
                    take = current + 1
            if take is not None and self._take(take):
                waited = time.monotonic() - started
                if waited > 1:
                    log.info("%s: got the archive lease after waiting %.1fs", self.label, waited)
                return True
            waited = time.monotonic() - started
            if waited >= s.wait_timeout:
                raise LeaseBusy(
                    self.provider,
                    f"{self.label}: another worker ({_who(_parse(text or '{}'))}) has held the archive lease "
                    f"{self._path(current)} for more than {s.wait_timeout:.0f}s and keeps renewing it",
                    hint="a retry waits again; raise [artifact_harvest] lease_wait_timeout for very long transfers",
                )
            if last_log is None or time.monotonic() - last_log >= s.log_every:
                log.info("%s: %s is transferring this key; waiting for its archive lease (%.0fs so far)",
                         self.label, _who(_parse(text or "{}")), waited)
                last_log = time.monotonic()
            self._stop.wait(s.poll_interval)

    def _take(self, generation: int) -> bool:
        record = {**self.record, "generation": generation, "acquired_at": _now(), "renewed_at": _now(),
                  "renewals": 0, "expiry_seconds": self.settings.expiry}
        if not self.store.put_text(self._path(generation), json.dumps(record)):
            return False
        # a store whose create is not atomic (moto checks, then writes) can let two takers both "create":
        # the object keeps the later one, and the earlier sees another token here
        back = _parse(self.store.read_text(self._path(generation)) or "{}")
        if back.get("token") != self.record["token"]:
            log.info("%s: lost the race for lease generation %d to %s", self.label, generation, _who(back))
            return False
        self.generation, self.record = generation, record
        self._last_renewal = time.monotonic()
        self._thread = threading.Thread(target=self._heartbeat, name="archive-lease", daemon=True)
        self._thread.start()
        log.info("%s: holding the archive lease %s", self.label, self._path(generation))
        return True

    # -- the holding side ------------------------------------------------------------------------------
    def _heartbeat(self) -> None:
        while not self._stop.wait(self.settings.renew_interval):
            try:
                self.renew()
            except Exception as exc:  # noqa: BLE001 - a store hiccup: the next beat tries again
                log.warning("%s: renewing the archive lease failed: %s", self.label, exc)
                if time.monotonic() - self._last_renewal >= self.settings.expiry:
                    self.lost = f"no renewal succeeded for {self.settings.expiry:.0f}s (last error: {exc})"
            if self.lost:
                log.error("%s: lost the archive lease: %s", self.label, self.lost)
                return

    def renew(self) -> None:
        """Rewrite our own generation (only we write it); note a loss when a newer generation exists, or when
        our object holds another token (two "creates" that both passed on a store whose create is not atomic)."""
        if self._newer():
            self.lost = f"another worker took the lease over (generation > {self.generation})"
            return
        there = _parse(self.store.read_text(self._path(self.generation)) or "{}")
        if there.get("token") != self.record["token"]:
            self.lost = f"the lease object names another holder ({_who(there)})"
            return
        self.record = {**self.record, "renewed_at": _now(), "renewals": self.record["renewals"] + 1}
        self.store.replace_text(self._path(self.generation), json.dumps(self.record))
        self._last_renewal = time.monotonic()

    def check(self) -> None:
        """Raise ``LeaseLost`` unless we still hold the lease (call it right before the final write)."""
        if not self.lost and self._newer():
            self.lost = f"another worker took the lease over (generation > {self.generation})"
        if self.lost:
            raise LeaseLost(self.provider, f"{self.label}: {self.lost}; nothing archived by this try",
                            hint="the staged file is kept; a retry waits for the new holder, then finds the archive")

    def release(self, archived: bool) -> None:
        """Stop renewing; delete the lease once archived, else mark it released so a waiter takes over now."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.renew_interval + 30)
        if self.generation is None or self.lost:
            return
        try:
            if archived:
                for generation in self._generations():
                    if generation <= self.generation:
                        self.store.delete(self._path(generation))
            else:
                self.store.replace_text(self._path(self.generation), json.dumps({**self.record, "released": _now()}))
        except Exception as exc:  # noqa: BLE001 - the lease then expires by itself
            log.warning("%s: could not release the archive lease (it expires in %.0fs): %s", self.label,
                        self.settings.expiry, exc)

    def _newer(self) -> bool:
        return any(g > (self.generation or 0) for g in self._generations())

    def _generations(self) -> list[int]:
        found = []
        for name in self.store.list_names(self.folder, PREFIX):
            suffix = name[len(PREFIX):]
            if suffix.isdigit():
                found.append(int(suffix))
        return found

    def _path(self, generation: int) -> ObjectStoragePath:
        return self.folder / f"{PREFIX}{generation}"


def _parse(text: str) -> dict:
    try:
        value = json.loads(text)
        return value if isinstance(value, dict) else {}
    except ValueError:
        return {}  # a torn write on a store without atomic create: its next renewal changes the text


def _who(record: dict) -> str:
    ti = record.get("ti") or {}
    where = f"{record.get('host', '?')} pid {record.get('pid', '?')}"
    return f"{where} ({ti.get('dag_id')}/{ti.get('run_id')}/{ti.get('task_id')} try {ti.get('try_number')})" \
        if ti else where
