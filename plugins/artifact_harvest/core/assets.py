"""One Asset per provider: downstream DAGs schedule on "a new <provider> artifact was archived".

The Asset events double as the archive's index (their extra is the manifest): the Artifacts page lists them,
and each download task links to its artifact's page there. One event per archived artifact, and when a re-run
says ``already_archived``: docs/object-storage.md.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlparse

from airflow.sdk import Asset, BaseOperatorLink

from artifact_harvest.core.paths import safe_segment

ASSET_URI_PREFIX = "x-artifact-harvest://"
PLUGIN_URL_PREFIX = "/artifacts"  # where the Artifacts FastAPI app is mounted in the API server
UI_ROUTE = "artifacts"  # the page inside the UI: <base_url>/plugin/artifacts


def asset_for(provider: str) -> Asset:
    """``artifact_harvest/<provider>``; the URI uses a private ``x-`` scheme, which Airflow keeps verbatim."""
    name = safe_segment(provider, "provider")
    return Asset(name=f"artifact_harvest/{name}", uri=f"{ASSET_URI_PREFIX}{name}")


def ui_base_path() -> str:
    """The path part of ``[api] base_url`` ("" at the root), so links work behind a path prefix too."""
    from airflow.configuration import conf

    return urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


def artifact_page_url(provider: str, artifact_key: str) -> str:
    """The artifact's detail on the Artifacts page, rendered inside the Airflow UI."""
    return f"{ui_base_path()}/plugin/{UI_ROUTE}?{urlencode({'provider': provider, 'key': artifact_key})}"


class ArtifactDetailLink(BaseOperatorLink):
    """"Artifact" button on a download task: opens the archived artifact on the Artifacts page."""

    name = "Artifact"

    def get_link(self, operator, *, ti_key) -> str:
        provider, key = getattr(operator, "provider", ""), getattr(operator, "artifact_key", "")
        return artifact_page_url(provider, str(key)) if provider and key else ""
