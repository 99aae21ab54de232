"""The Artifacts FastAPI app, mounted by the plugin in the API server at ``/artifacts``.

Every route needs an Airflow user: the same JWT the UI holds (its ``_token`` cookie, or ``Authorization:
Bearer``), resolved by Airflow's own ``get_user`` and the configured auth manager. An artifact is visible to
whoever may read the DAG that archived it (``is_authorized_dag`` / ``get_authorized_dag_ids``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPBearer

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, get_user
from airflow.utils.session import create_session

from artifact_harvest.core.paths import safe_segment
from artifact_harvest.core.errors import FatalProviderError
from artifact_harvest.ui import index, late_runs, store

app = FastAPI(title="Artifact Harvest: archived artifacts", docs_url=None, redoc_url=None, openapi_url=None)
_bearer = HTTPBearer(auto_error=False)


class Problem(Exception):
    """An error the page shows as is: what happened and what to do."""

    def __init__(self, status: int, detail: str, hint: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.hint, self.headers = status, detail, hint, headers


@app.exception_handler(Problem)
async def _problem(_request: Request, exc: Problem) -> JSONResponse:
    return JSONResponse({"detail": exc.detail, "hint": exc.hint}, status_code=exc.status, headers=exc.headers)


def _readable_dag_ids(user: BaseUser) -> set[str]:
    return get_auth_manager().get_authorized_dag_ids(user=user, method="GET")


def _can_read(user: BaseUser, dag_id: str) -> bool:
    return get_auth_manager().is_authorized_dag(method="GET", user=user, details=DagDetails(id=dag_id))


def _addressed(provider: str, key: str) -> tuple[str, str]:
    """Provider and key as the archive spells them; anything a path could hide in is refused."""
    try:
        if safe_segment(provider, "provider") == provider and safe_segment(key, "artifact key") == key:
            return provider, key
    except FatalProviderError:
        pass
    raise Problem(404, f"no artifact {provider!r}/{key!r}", "artifacts are addressed by provider and key as listed")


def _indexed(user: BaseUser, provider: str, key: str) -> Any:
    """The artifact's Asset event if the user may read its DAG: 404 unknown, 403 not allowed."""
    provider, key = _addressed(provider, key)
    with create_session() as session:
        event = index.find_artifact(session, provider, key)
    if event is None:
        raise Problem(404, f"no archived artifact {provider}/{key}", "check the provider and key in the list")
    if not _can_read(user, event.source_dag_id):
        raise HTTPException(403, f"you may not read DAG {event.source_dag_id}, which archived this artifact")
    return event


def _store_problem(exc: Exception, event: Any) -> Problem:
    """What the page says when the store fails: its message (no secrets) and what to do."""
    if isinstance(exc, store.StoreUnavailable):
        return Problem(503, f"the archive store is unreachable: {exc}",
                       "check the Variable artifact_archive_root and its connection (artifact_archive_conn_id)")
    return Problem(409, str(exc), f"restore the file, or delete the manifest and clear task "
                   f"{event.source_task_id} of run {event.source_run_id} ({event.source_dag_id}) to archive it again")


def _stored(provider: str, key: str, event: Any) -> store.StoredArtifact:
    try:
        return store.resolve(provider, key)
    except (store.StoreUnavailable, store.NotArchived) as exc:
        raise _store_problem(exc, event) from None


@app.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request) -> HTMLResponse:
    """The page (plain HTML + JS); it renders inside the UI through the plugin's external views."""
    await get_user(request, None, await _bearer(request))
    return HTMLResponse(files("artifact_harvest.ui").joinpath("page.html").read_text())


def _filters(
    provider: str | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> index.Filters:
    """The query parameters the list and the usage summary share."""
    return index.Filters(provider=provider, dag_id=dag_id, run_id=run_id, since=since, until=until)


FiltersDep = Annotated[index.Filters, Depends(_filters)]


@app.get("/api/artifacts")
def list_artifacts(
    user: GetUserDep,
    filters: FiltersDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=index.MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    with create_session() as session:
        total, items = index.list_artifacts(session, replace(filters, text=q), _readable_dag_ids(user),
                                            limit=limit, offset=offset)
    return {"total": total, "limit": limit, "offset": offset, "artifacts": items}


@app.get("/api/usage")
def usage(user: GetUserDep, filters: FiltersDep) -> dict[str, Any]:
    """What the archived jobs used, summed per provider, DAG and month (the list's filters, no text search);
    ``unknown`` counts artifacts whose manifest records no usage."""
    with create_session() as session:
        groups = index.usage_summary(session, filters, _readable_dag_ids(user))
    return {"groups": groups, "artifacts": sum(g["artifacts"] for g in groups),
            "unknown": sum(g["unknown"] for g in groups)}


@app.get("/api/filters")
def filters(user: GetUserDep) -> dict[str, Any]:
    with create_session() as session:
        return index.facets(session, _readable_dag_ids(user))


@app.get("/api/late-runs")
def list_late_runs(user: GetUserDep, dag_id: str | None = None, run_id: str | None = None) -> dict[str, Any]:
    """The SLA line: runs of readable DAGs still queued or running past a deadline (docs/deadlines.md)."""
    with create_session() as session:
        runs = late_runs.late_runs(session, _readable_dag_ids(user), dag_id=dag_id, run_id=run_id)
    return {"total": len(runs), "late_runs": runs}


@app.get("/api/store")
def store_status(user: GetUserDep) -> dict[str, Any]:
    return store.store_status()


@app.get("/api/artifacts/{provider}/{key}")
def detail(user: GetUserDep, provider: str, key: str) -> dict[str, Any]:
    """The whole manifest (from the index), its source ids and bundle members, and the data file's state."""
    event = _indexed(user, provider, key)
    manifest = dict(event.extra or {})
    data_file: dict[str, Any] = {"present": True}
    try:
        stored = store.resolve(provider, key)
        data_file["size_bytes"] = store.stored_size(stored)
    except (store.StoreUnavailable, store.NotArchived) as exc:
        problem = _store_problem(exc, event)
        data_file = {"present": False, "error": problem.detail, "hint": problem.hint}
    return {
        **index.row(event),
        "manifest": manifest,
        "source": manifest.get("source") or {},
        "members": (manifest.get("extra") or {}).get("members") or [],
        "data_file": data_file,
    }


@app.get("/api/artifacts/{provider}/{key}/download")
def download(user: GetUserDep, provider: str, key: str) -> StreamingResponse:
    """The stored bytes, streamed; the name is the manifest's, never the request's."""
    event = _indexed(user, provider, key)
    stored = _stored(provider, key, event)
    size = store.stored_size(stored)
    if size != stored.size:
        raise Problem(409, f"the stored file has {size} bytes, its manifest says {stored.size}",
                      "run Verify; restore the file from the provider if it is damaged")
    name = stored.filename
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    headers = {
        "Content-Length": str(size),
        "Content-Encoding": "identity",  # the API server's GZip middleware would drop Content-Length

        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}",
        "X-Content-SHA256": str(stored.manifest.get("sha256", "")),
    }
    return StreamingResponse(store.stream(stored), media_type="application/octet-stream", headers=headers)


#: seconds a client told 429 waits before asking again
VERIFY_RETRY_AFTER = 10


@app.post("/api/artifacts/{provider}/{key}/verify", status_code=202)
def verify(user: GetUserDep, provider: str, key: str) -> dict[str, Any]:
    """Start re-hashing the stored bytes against the manifest, or join the run already going for this
    artifact (``joined``); poll ``/api/verify/<job_id>``. 429 with Retry-After when the host's
    ``verify_concurrency`` slots are all hashing."""
    event = _indexed(user, provider, key)
    try:
        job, started = store.start_verify(_stored(provider, key, event), event.source_dag_id)
    except store.VerifyBusy as exc:
        raise Problem(429, str(exc), "try again when one finishes: Verify re-reads the whole file, so each "
                      "takes as long as reading it from the store", {"Retry-After": str(VERIFY_RETRY_AFTER)}) from None
    return {**job, "joined": not started}


@app.get("/api/verify/{job_id}")
def verify_progress(user: GetUserDep, job_id: str) -> dict[str, Any]:
    job = store.read_job(job_id)
    if job is None:
        raise Problem(404, f"no verify job {job_id!r}", "start one with Verify on the artifact")
    if not _can_read(user, job["dag_id"]):
        raise HTTPException(403, f"you may not read DAG {job['dag_id']}")
    return job
