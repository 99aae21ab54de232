"""One Asset per provider: downstream DAGs schedule on "a new <provider> artifact was archived"."""

from __future__ import annotations

from airflow.sdk import Asset

from artifact_harvest.core.download import safe_segment


def asset_for(provider: str) -> Asset:
    """``artifact_harvest/<provider>``; the URI uses a private ``x-`` scheme, which Airflow keeps verbatim."""
    name = safe_segment(provider, "provider")
    return Asset(name=f"artifact_harvest/{name}", uri=f"x-artifact-harvest://{name}")
