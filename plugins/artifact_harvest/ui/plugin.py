"""The AirflowPlugin, loaded from the package's ``airflow.plugins`` entry point (nothing in a plugins folder).

Every Airflow process loads plugins (the listener manager does: scheduler, triggerer, DAG processor and each
task process), so this module stays light: the Artifacts app is imported only where ``fastapi_apps`` is read,
in the API server (docs/ui.md, "Where the app loads").

- ``fastapi_apps``: the Artifacts app (JSON API + page) at ``/artifacts`` in the API server;
- ``external_views``: "Artifacts" in the navigation and an "Artifacts" tab on every DAG run, both rendered
  inside the UI (``url_route``);
- ``operator_extra_links``: the "Artifact" button of download tasks, so the API server can show it;
- ``deadline_references``: ``RunDeadline`` (the per-run ``deadline`` Param), so the DAG processor, scheduler and
  API server can read the waiting DAGs' Deadline Alert back (Airflow resolves custom references only through
  plugins; docs/deadlines.md).
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from artifact_harvest.core.assets import PLUGIN_URL_PREFIX, UI_ROUTE, ArtifactDetailLink, ui_base_path
from artifact_harvest.core.deadlines import RunDeadline

ICON = (
    "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24' fill='none' "
    "stroke='%23666' stroke-width='2'><path d='M21 8v13H3V8'/><path d='M1 3h22v5H1z'/><path d='M10 12h4'/></svg>"
)


class ArtifactsPlugin(AirflowPlugin):
    name = "artifact_harvest"
    external_views = [
        {
            "name": "Artifacts",
            "href": f"{ui_base_path()}{PLUGIN_URL_PREFIX}/",
            "destination": "nav",
            "url_route": UI_ROUTE,
            "icon": ICON,
            "nav_top_level": True,
        },
        {
            "name": "Artifacts",
            "href": f"{ui_base_path()}{PLUGIN_URL_PREFIX}/?dag_id={{DAG_ID}}&run_id={{RUN_ID}}",
            "destination": "dag_run",
            "url_route": f"{UI_ROUTE}-run",
            "icon": ICON,
        },
    ]
    operator_extra_links = [ArtifactDetailLink()]
    deadline_references = [RunDeadline]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """The app, imported on first read (FastAPI and Airflow's core API: only the API server needs them)."""
        from artifact_harvest.ui.app import app

        return [{"app": app, "url_prefix": PLUGIN_URL_PREFIX, "name": "Artifact Harvest artifacts"}]
