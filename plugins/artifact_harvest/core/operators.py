"""Download-and-archive as one task step, for any provider: fresh URL -> staging -> archive -> Asset event.

Every task of a download operator has the provider's Asset as outlet, mapped ones too: ``__init__`` adds it
for plain tasks and ``partial()`` for mapped ones (a mapped task's outlets are fixed by ``partial()``, before
any ``__init__`` runs), so each archived artifact gives exactly one Asset event.

When the artifact is already archived (a re-run, a backfill of the same key, a run on another host that
waited for the key's lease) nothing is downloaded; the task still succeeds and Airflow still emits the
outlet's event (a successful task with outlets always does), so its extra carries the existing manifest
plus ``"already_archived": true`` for consumers that deduplicate. So does a run that lost the final write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

from airflow.sdk import BaseOperator, Context

from artifact_harvest.core.archive import Archiver, archive_root, staging_dir
from artifact_harvest.core.assets import ArtifactDetailLink, asset_for
from artifact_harvest.core.errors import ProviderError
from artifact_harvest.core.transfer import DownloadedFile, Downloader, RemoteFile
from artifact_harvest.core.lease import owner_of
from artifact_harvest.core.lineage import ArchiveLineageMixin
from artifact_harvest.core.usage import Usage, upstream

log = logging.getLogger(__name__)

ExtraFn = Callable[[DownloadedFile, Any], dict]
UsageFn = Callable[[DownloadedFile, Any], Usage]


def _run_ids(context: Any) -> tuple[str, str]:
    dag_id = getattr(context.get("dag"), "dag_id", None) or getattr(context.get("ti"), "dag_id", "")
    return dag_id, context.get("run_id") or getattr(context.get("dag_run"), "run_id", "")


def _usage(provider: str, artifact_key: str, usage_fn: UsageFn | None, downloaded: DownloadedFile,
           context: Any) -> dict:
    """What the job used, for the manifest; a provider that cannot say now leaves it unknown (never fails
    the archive of bytes already paid for)."""
    if usage_fn is None:
        return {}
    try:
        return usage_fn(downloaded, context).to_dict()
    except ProviderError as exc:
        log.warning("[%s] %s: usage unknown, the provider did not answer: %s", provider, artifact_key, exc)
        return {}


def _emit(provider: str, context: Any, extra: dict) -> None:
    """Attach ``extra`` to the provider's outlet event (no-op when the caller's context has no outlets)."""
    events = context.get("outlet_events")
    if events is not None:
        events[asset_for(provider)].extra = extra


def download_and_archive(
    provider: str,
    artifact_key: str,
    fresh_url: Callable[[], RemoteFile],
    source: dict | None,
    context: Any,
    extra_fn: ExtraFn | None = None,
    *,
    skip_if_archived: bool = True,
    verify_tls: bool = True,
    usage_fn: UsageFn | None = None,
) -> dict:
    """The whole step for TaskFlow tasks and the operator alike; returns the manifest (no URL in it).

    ``usage_fn(downloaded, context)`` says what the job used (``core.usage``); none: the manifest's usage is
    unknown.

    One writer per key across hosts: the key's lease in the archive store (``core.lease``) is held around
    download and archive; a run that waits for it finds the archive afterwards and downloads nothing. Only the
    run that wrote the manifest emits the event without ``already_archived``.
    """
    archiver = Archiver(archive_root(), state=context.get("task_state_store"))  # an S3 upload resumes from it
    if skip_if_archived and (existing := archiver.manifest(provider, artifact_key)) is not None:
        return _already(provider, artifact_key, existing, context)
    downloader = Downloader(staging_dir(), provider=provider, verify_tls=verify_tls)
    lease = archiver.lease(provider, artifact_key, owner=owner_of(context),
                           is_done=lambda: skip_if_archived and archiver.is_archived(provider, artifact_key))
    if not lease.acquire():  # another worker archived it while we waited
        return _already(provider, artifact_key, archiver.manifest(provider, artifact_key) or {}, context)
    archived = False
    try:
        with downloader.key_lock(artifact_key):  # staged files on this host: one writer (the lease is across hosts)
            if skip_if_archived and (existing := archiver.manifest(provider, artifact_key)) is not None:
                archived = True
                return _already(provider, artifact_key, existing, context)
            downloaded = downloader.download(fresh_url, key=artifact_key)
            lease.check()  # taken over while we downloaded: leave the archive to the new holder
            dag_id, run_id = _run_ids(context)
            outcome = archiver.put(
                downloaded,
                provider=provider,
                artifact_key=artifact_key,
                source=dict(source or {}),
                dag_id=dag_id,
                run_id=run_id,
                extra=extra_fn(downloaded, context) if extra_fn else {},
                usage=_usage(provider, artifact_key, usage_fn, downloaded, context),
            )
            archived = True
            downloader.release(downloaded)
    finally:
        lease.release(archived)
    _emit(provider, context, outcome.manifest if outcome.created else {**outcome.manifest, "already_archived": True})
    return outcome.manifest


def _already(provider: str, artifact_key: str, existing: dict, context: Any) -> dict:
    log.info("[%s] %s is already archived at %s; skipping the download", provider, artifact_key, existing.get("path"))
    _emit(provider, context, {**existing, "already_archived": True})
    return existing


class DownloadAndArchiveOperator(ArchiveLineageMixin, BaseOperator):
    """Provider-agnostic: ask the provider for a fresh URL, download (resumable, verified), archive, emit an Asset event.

    With the openlineage provider the archived artifact is the task's output dataset (``core.lineage``).
    """

    provider: ClassVar[str] = ""
    template_fields = ("artifact_key", "source")
    operator_extra_links = (ArtifactDetailLink(),)

    def __init__(
        self, *, artifact_key: str, source: dict | None = None, skip_if_archived: bool = True, **kwargs: Any
    ) -> None:
        if not self.provider:
            raise TypeError(f"{type(self).__name__} must set the class attribute 'provider'")
        kwargs.setdefault("outlets", [asset_for(self.provider)])
        super().__init__(**kwargs)
        self.artifact_key = artifact_key
        self.source = source or {}
        self.skip_if_archived = skip_if_archived

    @classmethod
    def partial(cls, **kwargs: Any):  # type: ignore[override]
        """Mapped tasks take their outlets from here, never from ``__init__``: the provider's Asset by default."""
        kwargs.setdefault("outlets", [asset_for(cls.provider)])
        return super().partial(**kwargs)

    def remote_file(self, context: Context) -> RemoteFile:
        """Ask the provider for a FRESH URL; called again whenever the previous one expired."""
        raise NotImplementedError

    def manifest_extra(self, downloaded: DownloadedFile, context: Context) -> dict:
        """Provider facts worth keeping in the manifest (model id, job id...); never a URL."""
        return {}

    def usage(self, downloaded: DownloadedFile, context: Context) -> Usage:
        """What the job used: here what upstream tasks pushed (``core.usage.push``); providers add what
        their answers say."""
        return upstream(context, self)

    def verify_tls(self) -> bool:
        """Whether downloads verify TLS: the provider's connection decides (extra ``verify_ssl``)."""
        return True

    def execute(self, context: Context) -> dict:
        self.archived_manifest = download_and_archive(
            self.provider,
            self.artifact_key,
            lambda: self.remote_file(context),
            self.source,
            context,
            self.manifest_extra,
            skip_if_archived=self.skip_if_archived,
            verify_tls=self.verify_tls(),
            usage_fn=self.usage,
        )
        return self.archived_manifest
