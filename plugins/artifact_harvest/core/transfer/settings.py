"""``TransferSettings``: every knob of the download layer, built once from ``[artifact_harvest]`` (docs/download.md)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from artifact_harvest.core.config import boolean, setting


#: field -> (``[artifact_harvest]`` key, type); the other fields are per call only
_CONFIG_KEYS: dict[str, tuple[str, Any]] = {
    "progress_interval": ("progress_interval", float),
    "connections": ("download_connections", int),
    "piece_size": ("download_piece_size", int),
    "parallel_threshold": ("parallel_threshold", int),
    "parallel_after": ("parallel_after", int),
    "lock_timeout": ("lock_timeout", float),
    "drop_written_pages": ("drop_written_pages", boolean),
}


@dataclass(frozen=True)
class TransferSettings:
    """How one file is fetched. Ranges: files of at least ``parallel_threshold`` bytes start as one stream; once
    ``parallel_after`` bytes show the stream waiting on the link, the rest comes as ``connections`` ranges of
    ``piece_size`` (``connections=1``: never; ``parallel_after=0``: ranges from the first byte)."""

    chunk_size: int = 2 << 20  # one read of the single stream
    range_read: int = 256 << 10  # one read of a ranged connection (RSS: 16 connections hold 4 MiB)
    writeback_every: int = 32 << 20  # start a background fdatasync after this many new bytes
    drop_written_pages: bool = True  # the stream's pages leave the page cache once that fdatasync made them durable
    progress_interval: float = 30.0  # seconds between progress lines; 0: none
    timeout: tuple[float, float] = (10, 60)  # (connect, read) seconds
    verify_tls: bool = True
    max_url_refreshes: int = 5
    always_md5: bool = False
    connections: int = 16
    piece_size: int = 8 << 20
    parallel_threshold: int = 64 << 20
    parallel_after: int = 16 << 20
    lock_timeout: float = 6 * 3600.0

    @classmethod
    def from_config(cls, **overrides: Any) -> TransferSettings:
        """Defaults, then ``[artifact_harvest]``, then ``overrides`` that are not None."""
        defaults = {f.name: f.default for f in fields(cls)}
        values = {name: setting(key, defaults[name], kind) for name, (key, kind) in _CONFIG_KEYS.items()}
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)

    def wants_ranges(self, total: int | None) -> bool:
        """Ranges are allowed for a file of ``total`` bytes (a big one, more than one connection configured)."""
        return self.connections > 1 and total is not None and total >= self.parallel_threshold
