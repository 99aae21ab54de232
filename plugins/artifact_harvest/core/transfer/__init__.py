"""The download layer: fetch one provider file into staging, resumable and verified (docs/download.md).

Public: ``Downloader``, ``RemoteFile``, ``DownloadedFile``, ``TransferSettings``; errors in ``core.errors``.
Modules import only downward (docs/architecture.md); this file re-exports and holds no logic.
"""

from artifact_harvest.core.transfer.downloader import Downloader
from artifact_harvest.core.transfer.settings import TransferSettings
from artifact_harvest.core.transfer.values import DownloadedFile, RemoteFile

__all__ = ["DownloadedFile", "Downloader", "RemoteFile", "TransferSettings"]
