"""What every part of one ``Downloader`` shares: who it fetches for, its settings, retries, disk and scrubber."""

from __future__ import annotations

from dataclasses import dataclass

from artifact_harvest.core.retry import RetryRule
from artifact_harvest.core.transfer.pipeline import DiskGuard
from artifact_harvest.core.transfer.redaction import Scrubber
from artifact_harvest.core.transfer.settings import TransferSettings


@dataclass(frozen=True)
class Context:
    provider: str
    settings: TransferSettings
    retry: RetryRule
    disk: DiskGuard
    scrub: Scrubber
