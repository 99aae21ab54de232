"""The ``[artifact_harvest]`` section as declared to Airflow (``get_provider_info()["config"]``).

Declared, the options show in ``airflow config list`` and the REST API's config, count as known options, and their
defaults come from here; the readers (``core.config.setting`` and ``conf.get*`` calls) keep the same values as
their own fallbacks for when Airflow's configuration is unavailable. ``tests/unit/test_provider_config.py`` checks
that both agree and that every option read is declared. What each option does and costs: docs/own-airflow.md.
"""

from __future__ import annotations

from typing import Any

SECTION = "artifact_harvest"


def _option(kind: str, default: str | None, description: str, example: str | None = None,
            sensitive: bool = False) -> dict[str, Any]:
    option: dict[str, Any] = {"description": description, "version_added": "0.1.0", "type": kind,
                              "example": example, "default": default}
    if sensitive:
        option["sensitive"] = True
    return option


OPTIONS: dict[str, dict[str, Any]] = {
    # the resend rule of every hook and the downloader (core/http.py, docs/resend-rule.md)
    "retry_attempts": _option("integer", "5", "Attempts of one call (first try included) before a transient "
                              "error fails it: the one retry rule of every hook and of the downloader.", "8"),
    "retry_base_delay": _option("float", "1.0", "Seconds before the first retry; doubled per attempt, with jitter. "
                                "A provider's Retry-After wins.", "0.5"),
    "retry_max_delay": _option("float", "60.0", "Cap in seconds of one retry delay.", "120"),
    # the download layer (core/transfer/settings.py, docs/download.md)
    "progress_interval": _option("float", "30.0", "Seconds between a download's progress lines (bytes, percent, "
                                 "MB/s, ETA); 0: none.", "60"),
    "download_connections": _option("integer", "16", "Parallel ranged connections for one big file once its "
                                    "single stream shows it is held back by the link; 1: never ranges.", "4"),
    "download_piece_size": _option("integer", "8388608", "Bytes per ranged piece (8 MiB).", "16777216"),
    "parallel_threshold": _option("integer", "67108864", "Files announced at or above this many bytes (64 MiB) "
                                  "may switch to ranges; smaller ones always come as one stream.", "134217728"),
    "parallel_after": _option("integer", "16777216", "Bytes of the single stream (16 MiB) that decide whether "
                              "the rest comes as ranges; 0: ranges from the first byte.", "0"),
    "drop_written_pages": _option("boolean", "True", "A download's staged pages leave the page cache once a "
                                  "background fdatasync made them durable, so later writes reuse pages (faster "
                                  "on VMs that hand free memory back to the host; docs/download.md).", "False"),
    "lock_timeout": _option("float", "21600.0", "Seconds a run waits for another run of the same artifact key "
                            "on the same host (staging lock, 6 h); also the lease wait when lease_wait_timeout "
                            "is unset.", "3600"),
    # the s3:// archive (core/archive_s3.py)
    "archive_part_size_mib": _option("float", "8.0", "Multipart part size in MiB of an s3:// archive upload "
                                     "(raised by itself so a file needs at most 10,000 parts).", "64"),
    "archive_upload_workers": _option("integer", "8", "Parts in flight per s3:// upload; memory is about parts x "
                                      "part size.", "4"),
    # one writer per artifact across hosts (core/lease.py, docs/one-writer.md)
    "lease_renew_interval": _option("float", "30.0", "Seconds between the lease holder's renewals.", "15"),
    "lease_expiry": _option("float", "180.0", "Seconds after which a lease not seen to change is stale and can "
                            "be taken over.", "300"),
    "lease_wait_timeout": _option("float", None, "Total seconds to wait for a lease that keeps being renewed, "
                                  "then LeaseBusy (retryable). Unset: lock_timeout.", "7200"),
    "lease_poll_interval": _option("float", "10.0", "Seconds between a waiter's looks at the store (at most a "
                                   "quarter of lease_expiry).", "5"),
    "lease_log_every": _option("float", "60.0", "Seconds between a waiter's log lines.", "300"),
    # the per-connection pace (core/pace.py, docs/pacing.md)
    "rate_limit_url": _option("string", None, "Redis URL holding the pace of every connection, so every "
                              "triggerer and worker on every host shares one budget per account. Unset: each "
                              "process paces on its own (see rate_limit_share).", "redis://redis:6379/0",
                              sensitive=True),
    "rate_limit_share": _option("float", "1.0", "Without rate_limit_url: the share of a connection's rate each "
                                "process uses, in (0, 1]; 1 / the number of processes calling one account.", "0.5"),
    # waits of one process share polls (core/shared_poll.py, docs/shared-polls.md)
    "shared_polls": _option("boolean", "True", "Deferred waits of one triggerer that poll the same thing share "
                            "one call per interval; False: one call per wait.", "False"),
    # a run past its deadline Param (core/late_runs.py, docs/deadlines.md)
    "deadline_webhook_url": _option("string", None, "URL the triggerer POSTs a JSON alert to when a run is "
                                    "still going past its deadline (the waiting DAGs' deadline Param); a token "
                                    "may sit in its path or query: it is never logged. Unset: the alert is a "
                                    "log line only.", "https://hooks.example.com/airflow?token=...",
                                    sensitive=True),
    # the Artifacts page (ui/store.py, docs/sweeps.md)
    "verify_concurrency": _option("integer", "2", "Verify re-hashings running at once per API server host; more "
                                  "get 429.", "4"),
}


def config_section() -> dict[str, Any]:
    """``{"artifact_harvest": {...}}`` for ``get_provider_info()["config"]`` (Airflow's provider schema)."""
    return {SECTION: {"description": "Artifact Harvest: retries, downloads, the archive, leases, pacing and the "
                      "Artifacts page. Also settable as AIRFLOW__ARTIFACT_HARVEST__<OPTION>.",
                      "options": OPTIONS}}
