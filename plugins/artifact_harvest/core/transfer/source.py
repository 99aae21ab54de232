"""Where the bytes come from: the provider's callable that returns a fresh ``RemoteFile`` (signed URLs expire)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from artifact_harvest.core.errors import FatalDownloadError, UnsupportedScheme
from artifact_harvest.core.redact import redact_url
from artifact_harvest.core.transfer.redaction import Scrubber
from artifact_harvest.core.transfer.values import RemoteFile, Transfer

log = logging.getLogger(__name__)


class UrlSource:
    """The latest URL of one file. Every URL is checked (http(s) only) and its query handed to the scrubber
    before use; fresh URLs are limited to ``max_refreshes`` per budget (one single stream, one ranged fetch).
    Thread-safe: the connections of a ranged fetch share one source."""

    def __init__(
        self, fresh_url: Callable[[], RemoteFile], *, provider: str, max_refreshes: int, scrub: Scrubber
    ) -> None:
        self._fresh_url, self.provider, self.max_refreshes, self.scrub = fresh_url, provider, max_refreshes, scrub
        self._lock = threading.Lock()
        self.generation = 0  # +1 per fresh URL: tells a connection whether another one refreshed already
        self._refreshes = 0

    def fresh(self) -> RemoteFile:
        """A fresh, checked URL, outside any budget (the first one, a probe's)."""
        return self.checked(self._fresh_url())

    def checked(self, remote: RemoteFile) -> RemoteFile:
        """Refuse anything but http(s); hide the URL's query from logs and masked output."""
        scheme = urlsplit(remote.url).scheme.lower()
        if scheme not in ("http", "https"):
            raise UnsupportedScheme(
                self.provider,
                f"refusing to download {redact_url(remote.url)!r}: scheme {scheme or 'none'!r} is not http(s)",
            )
        self.scrub.add(urlsplit(remote.url).query)
        return remote

    def new_budget(self) -> None:
        self._refreshes = 0

    def refresh(self, why: str, transfer: Transfer, label: str, seen: int | None = None, audience: str = "") -> None:
        """Give ``transfer`` a fresh URL after ``why``, unless another thread has since generation ``seen``.

        Raises ``FatalDownloadError`` once the budget is spent (the provider keeps handing out refused URLs)."""
        with self._lock:
            if seen is not None and seen != self.generation:
                return
            self._refreshes += 1
            if self._refreshes > self.max_refreshes:
                raise FatalDownloadError(
                    self.provider, f"{label}: URL still refused after {self.max_refreshes} fresh URLs: {why}"
                )
            log.warning("%s: %s; asking the provider for a fresh URL%s", label, why, audience)
            transfer.remote = self.fresh()
            self.generation += 1
