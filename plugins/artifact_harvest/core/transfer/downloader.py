"""``Downloader``: resumable, verified, constant-memory downloads into a staging directory; knows no provider.

It keeps the pass loop and the integrity policy; the stream, the ranged fetch, the choice between them and the
hashing live in their own modules (docs/architecture.md). What each case does and costs: docs/download.md.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path

from artifact_harvest.core.errors import FatalDownloadError, IntegrityError, ProviderChecksumError
from artifact_harvest.core.paths import safe_filename, safe_segment
from artifact_harvest.core.retry import RetryRule
from artifact_harvest.core.staging import Sidecar, fsync_path, key_lock
from artifact_harvest.core.transfer.context import Context
from artifact_harvest.core.transfer.pipeline import DiskGuard, HashPipeline
from artifact_harvest.core.transfer.plan import as_plain_prefix, ranged_plan
from artifact_harvest.core.transfer.ranged import RangedFetch
from artifact_harvest.core.transfer.redaction import Scrubber, install_log_filter
from artifact_harvest.core.transfer.settings import TransferSettings
from artifact_harvest.core.transfer.source import UrlSource
from artifact_harvest.core.transfer.stream import SingleStream
from artifact_harvest.core.transfer.values import DownloadedFile, NetworkBound, RemoteFile, Transfer, VersionChanged

log = logging.getLogger(__name__)


class Downloader:
    """Streams one remote file into ``<staging>/<key>/``, resumable and verified (docs/download.md)."""

    #: a clean pass whose bytes disagree is fetched once more; a resumed pass that disagrees starts clean
    max_passes = 3

    def __init__(
        self,
        staging_dir: Path,
        *,
        provider: str = "download",
        retry: RetryRule | None = None,
        settings: TransferSettings | None = None,
        chunk_size: int | None = None,
        progress_interval: float | None = None,
        verify_tls: bool | None = None,
        timeout: tuple[float, float] | None = None,
        max_url_refreshes: int | None = None,
        always_md5: bool | None = None,
        connections: int | None = None,
        piece_size: int | None = None,
        parallel_threshold: int | None = None,
        parallel_after: int | None = None,
    ) -> None:
        """``settings`` (default: ``TransferSettings.from_config()``); any other keyword overrides one field."""
        overrides = dict(
            chunk_size=chunk_size, progress_interval=progress_interval, verify_tls=verify_tls, timeout=timeout,
            max_url_refreshes=max_url_refreshes, always_md5=always_md5, connections=connections,
            piece_size=piece_size, parallel_threshold=parallel_threshold, parallel_after=parallel_after,
        )
        if settings is None:
            settings = TransferSettings.from_config(**overrides)
        elif any(value is not None for value in overrides.values()):
            settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        self.staging_dir = Path(staging_dir)
        self.provider = provider
        self.settings = settings
        self.ctx = Context(provider, settings, retry or RetryRule(), DiskGuard(self.staging_dir, provider), Scrubber())
        install_log_filter()

    # -- public ------------------------------------------------------------------------------------
    def download(self, fresh_url: Callable[[], RemoteFile], *, key: str) -> DownloadedFile:
        """Fetch the file ``fresh_url()`` describes into ``<staging>/<key>/``; resume what is there.

        Integrity policy: bytes that disagree with the provider after one clean pass from byte 0 are fetched
        once more from byte 0; only the same wrong bytes twice are fatal (``ProviderChecksumError``). A resumed
        pass that disagrees starts over clean.
        """
        started = time.monotonic()
        source = UrlSource(fresh_url, provider=self.provider, max_refreshes=self.settings.max_url_refreshes,
                           scrub=self.ctx.scrub)
        remote = source.fresh()
        name = safe_filename(remote.filename)
        folder = self.staging_dir / safe_segment(key, "artifact key")
        folder.mkdir(parents=True, exist_ok=True)
        final, part = folder / name, folder / f"{name}.part"
        label = f"[{self.provider}] {key}/{name}"
        with_md5 = self.settings.always_md5 or remote.md5 is not None

        if final.exists():
            reused = self._reuse_final(final, part, remote, with_md5, label)
            if reused is not None:
                return reused

        first_wrong: tuple[tuple, str] | None = None  # (size, md5, sha256) and problem of a clean pass
        for _ in range(self.max_passes):
            transfer = Transfer(remote, Sidecar.load(final), final)
            self._forget_unknown_partial(part, transfer, label)
            plan = ranged_plan(self.ctx, source, transfer, part, label)
            if plan is None:
                as_plain_prefix(part, transfer)
            pipe = HashPipeline(None if plan else part, with_md5, self.settings.writeback_every,
                                chunk_size=self.settings.chunk_size, drop_written=self.settings.drop_written_pages)
            try:
                if plan is not None:
                    resumed_from = RangedFetch(self.ctx, source, transfer, plan, part, label).run(pipe)
                else:
                    if offset := pipe.rehash(part):
                        log.info("%s: resuming from %d bytes already in staging", label, offset)
                    resumed_from = self._stream(source, transfer, part, pipe, label)
                pipe.sync(durable=True)
                size = part.stat().st_size
                problem = self._mismatch(size, transfer, pipe)
            except VersionChanged as exc:
                pipe.close()
                part.unlink(missing_ok=True)
                transfer.forget()
                remote = transfer.remote
                log.warning("%s: %s; starting the whole file over from byte 0", label, exc)
                continue
            except FatalDownloadError:
                pipe.close()
                part.unlink(missing_ok=True)
                transfer.forget()
                raise
            except BaseException:
                pipe.close()
                if not part.exists() or not part.stat().st_size:
                    part.unlink(missing_ok=True)
                    transfer.forget()
                raise
            remote = transfer.remote
            if problem is None:
                return self._finish(part, final, transfer, pipe, started, resumed_from, label)
            digests = (size, pipe.hexdigest("md5"), pipe.hexdigest("sha256"))
            pipe.close()
            part.unlink(missing_ok=True)
            transfer.forget()
            if resumed_from:
                log.warning("%s: %s after a resumed download; starting over from byte 0", label, problem)
                continue
            if first_wrong is None:
                first_wrong = (digests, problem)
                log.warning("%s: %s after a clean pass from byte 0; downloading once more from byte 0", label, problem)
                continue
            if first_wrong[0] == digests:
                raise ProviderChecksumError(
                    self.provider,
                    f"{key}/{name}: two clean downloads from byte 0 gave the same bytes (sha256 {digests[2]}) and "
                    f"both disagree with the provider: first pass {first_wrong[1]}; second pass {problem}; "
                    "partial data deleted",
                    hint="the provider's file or its announced checksum is wrong; ask the provider",
                )
            raise IntegrityError(
                self.provider,
                f"{key}/{name}: two clean downloads gave different wrong bytes (first pass {first_wrong[1]}; "
                f"second pass {problem}): the transfer is corrupting data; partial data deleted",
            )
        raise IntegrityError(
            self.provider, f"{key}/{name}: no pass out of {self.max_passes} gave verified bytes; partial data deleted"
        )

    def key_lock(self, key: str) -> AbstractContextManager[None]:
        """The exclusive lock of ``key``'s staging folder: hold it around download *and* archive."""
        folder = self.staging_dir / safe_segment(key, "artifact key")
        return key_lock(folder, label=f"[{self.provider}] {key}", provider=self.provider,
                        timeout=self.settings.lock_timeout)

    @staticmethod
    def release(file: DownloadedFile) -> None:
        """The file has left staging (archived): its sidecar has nothing left to describe."""
        if not file.path.exists():
            Sidecar.remove(file.path)

    # -- steps -------------------------------------------------------------------------------------
    def _reuse_final(
        self, final: Path, part: Path, remote: RemoteFile, with_md5: bool, label: str
    ) -> DownloadedFile | None:
        """A finished file from an earlier attempt (the archive step failed after it): re-verify, then reuse it.

        It is checked against the digests recorded when it was verified (sidecar) and whatever the provider
        announces; a file nothing can vouch for is downloaded again.
        """
        started = time.monotonic()
        transfer = Transfer(remote, Sidecar.load(final), final)
        pipe = HashPipeline(None, with_md5 or (transfer.sidecar is not None and transfer.sidecar.md5 is not None),
                            chunk_size=self.settings.chunk_size)
        vouched = remote.md5 is not None or (transfer.sidecar is not None and transfer.sidecar.sha256 is not None)
        try:
            size = pipe.rehash(final)
            problem = self._mismatch(size, transfer, pipe) if vouched else "nothing recorded to verify it against"
            if problem is None:
                log.info("%s: re-verified file already in staging, not downloading again", label)
                part.unlink(missing_ok=True)
                return self._result(final, pipe, started, size, size)
        finally:
            pipe.close()
        log.warning("%s: file already in staging is not trusted (%s); downloading again", label, problem)
        final.unlink()
        transfer.forget()
        return None

    @staticmethod
    def _forget_unknown_partial(part: Path, transfer: Transfer, label: str) -> None:
        """Bytes in staging with no record of which version they are of cannot be resumed: start over.

        Without a validator (the server sent neither ETag nor Last-Modified) only a provider md5 would catch a
        splice, so such a partial is resumed only when there is one.
        """
        if not part.exists():
            return
        sidecar = transfer.sidecar
        if sidecar is not None and (sidecar.validator or transfer.remote.md5):
            return
        if part.stat().st_size:
            log.warning("%s: partial file in staging has no record of its version; starting from byte 0", label)
        part.unlink()
        transfer.forget()

    def _stream(self, source: UrlSource, transfer: Transfer, part: Path, pipe: HashPipeline, label: str) -> int:
        """One stream; a big file whose stream turns out network-bound goes on as ranges from where it is."""
        stream = SingleStream(self.ctx, source, transfer, pipe, label)
        try:
            return stream.run(adaptive=self.settings.wants_ranges(transfer.total))
        except NetworkBound as bound:
            pipe.sync()
            plan = ranged_plan(self.ctx, source, transfer, part, label, handover=True)
            if plan is None:  # the server would not do ranges after all: the stream goes on
                return stream.run(adaptive=False)
            waiting, idle, rate = bound.meter.last
            log.info("%s: one stream waits on the network %.0f%% of the time at %.1f MB/s with %.0f%% of the CPU "
                     "idle: the remaining %d bytes as %d ranges", label, 100 * waiting, rate, 100 * idle,
                     plan.total - bound.offset, plan.connections)
            RangedFetch(self.ctx, source, transfer, plan, part, label, hashed=bound.offset).run(pipe)
            return bound.started_at

    def _finish(
        self, part: Path, final: Path, transfer: Transfer, pipe: HashPipeline, started: float, resumed_from: int,
        label: str,
    ) -> DownloadedFile:
        """Record the verified digests, then rename into place; both durable (the bytes were fsynced)."""
        sha256, md5 = pipe.hexdigest("sha256"), pipe.hexdigest("md5")
        pipe.close()
        sidecar = transfer.sidecar or Sidecar(None, None)
        sidecar.sha256, sidecar.md5 = sha256, md5
        sidecar.save(final)
        os.replace(part, final)
        fsync_path(final.parent)
        result = DownloadedFile(
            path=final, filename=final.name, size=final.stat().st_size, sha256=sha256 or "", md5=md5,
            seconds=time.monotonic() - started, resumed_from=resumed_from,
        )
        log.info(
            "%s: %d bytes in %.1fs (%.1f MB/s), sha256 %s",
            label, result.size, result.seconds, result.size / max(result.seconds, 1e-9) / 1e6, result.sha256,
        )
        return result

    @staticmethod
    def _mismatch(size: int, transfer: Transfer, pipe: HashPipeline) -> str | None:
        """What disagrees with the provider's announcement, the server's total or the recorded digests."""
        remote, sidecar = transfer.remote, transfer.sidecar or Sidecar(None, None)
        for expected, what in ((remote.size, "the provider announced"), (sidecar.total, "the server announced")):
            if expected is not None and size != expected:
                return f"size {size} bytes, {what} {expected}"
        md5 = pipe.hexdigest("md5")
        if remote.md5 is not None and md5 != remote.md5.strip().lower():
            return f"md5 {md5}, the provider's md5 is {remote.md5}"
        for name, recorded in (("sha256", sidecar.sha256), ("md5", sidecar.md5)):
            if recorded is not None and (got := pipe.hexdigest(name)) is not None and got != recorded:
                return f"{name} {got}, verified earlier as {recorded}"
        return None

    @staticmethod
    def _result(path: Path, pipe: HashPipeline, started: float, resumed_from: int, size: int) -> DownloadedFile:
        return DownloadedFile(
            path=path, filename=path.name, size=size, sha256=pipe.hexdigest("sha256") or "",
            md5=pipe.hexdigest("md5"), seconds=time.monotonic() - started, resumed_from=resumed_from,
        )
