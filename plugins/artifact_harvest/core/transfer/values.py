"""Value types of the download layer and the signals its parts raise to each other (never seen outside it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from artifact_harvest.core.staging import Sidecar

if TYPE_CHECKING:
    from artifact_harvest.core.transfer.flow import FlowMeter


@dataclass(frozen=True)
class RemoteFile:
    """What a provider says about one artifact, right before it is fetched."""

    url: str  # may be a signed URL: never logged with its query string, never stored
    filename: str
    size: int | None = None  # expected bytes when the provider says so
    md5: str | None = None  # expected md5 hex when the provider gives one


@dataclass(frozen=True)
class DownloadedFile:
    """A complete, verified file in staging (``md5`` is None when it was not needed, see docs/download.md)."""

    path: Path
    filename: str
    size: int
    sha256: str
    md5: str | None
    seconds: float
    resumed_from: int  # offset of the request that finished the file (0: fetched in one go)


@dataclass(frozen=True)
class RangedPlan:
    connections: int
    piece_size: int
    validator: str | None
    total: int


@dataclass
class Transfer:
    """One pass's moving parts: the latest URL, and which remote version the staged bytes are of."""

    remote: RemoteFile
    sidecar: Sidecar | None = None
    final: Path = field(default_factory=Path)

    @property
    def total(self) -> int | None:
        """The length the file must reach: the server's total once known, else what the provider announced."""
        if self.sidecar is not None and self.sidecar.total is not None:
            return self.sidecar.total
        return self.remote.size

    def record(self, validator: str | None, total: int | None) -> None:
        """A response from byte 0 names the version the staged bytes are of; durable before any byte lands."""
        self.sidecar = Sidecar(validator, total)
        self.sidecar.save(self.final)

    def forget(self) -> None:
        self.sidecar = None
        Sidecar.remove(self.final)


class Retry(Exception):
    """One request failed in a way another attempt may fix; ``pos``: where a ranged piece got to."""

    def __init__(self, message: str, retry_after: float | None = None, pos: int = 0) -> None:
        super().__init__(message)
        self.retry_after, self.pos = retry_after, pos


class Expired(Exception):
    """The (signed) URL was refused (403/410): ask the provider for a fresh one."""


class VersionChanged(Exception):
    """A range came back from another version of the file (or as a 200): the whole file starts over."""


class NetworkBound(Exception):
    """One stream is held back by the link (``FlowMeter``): hand the rest of the file over to ranges."""

    def __init__(self, offset: int, started_at: int, meter: FlowMeter) -> None:
        super().__init__(f"network-bound at byte {offset}")
        self.offset, self.started_at, self.meter = offset, started_at, meter


class Stop(Exception):
    """Another connection failed: stop this one (the first error is the one reported)."""
