"""The artifact index is the metadata DB: every archive emits one Asset event whose extra is the manifest.

Listing reads ``asset_event`` joined to ``asset`` (indexed, paged in SQL): no walk of the archive store per
request. Events of re-runs that archived nothing (``"already_archived": true``) are not listed twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Select, and_, extract, false, func, or_, select, type_coerce
from sqlalchemy.orm import Session

from airflow.models.asset import AssetEvent, AssetModel

from artifact_harvest.core.assets import ASSET_URI_PREFIX
from artifact_harvest.core.usage import add_up

MAX_PAGE = 200


def _field(name: str):
    """A top-level string field of the event's extra, through the dialect's JSON operator (SQLite, PostgreSQL)."""
    return type_coerce(AssetEvent.extra, JSON)[name].as_string()


def _first_archive():
    """Only the event of the run that archived the bytes, not the ``already_archived`` repeats."""
    flag = type_coerce(AssetEvent.extra, JSON)["already_archived"].as_boolean()
    return or_(flag.is_(None), flag == false())


@dataclass(frozen=True)
class Filters:
    provider: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None


def _artifact_events(readable_dag_ids: set[str] | None) -> Select:
    stmt = (
        select(AssetEvent.id, AssetEvent.timestamp, AssetEvent.source_dag_id, AssetEvent.source_run_id,
               AssetEvent.source_task_id, AssetEvent.source_map_index, AssetEvent.extra)
        .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
        .where(AssetModel.uri.startswith(ASSET_URI_PREFIX), _first_archive())
    )
    if readable_dag_ids is not None:  # None: every DAG (an admin)
        stmt = stmt.where(AssetEvent.source_dag_id.in_(sorted(readable_dag_ids)))
    return stmt


def _filtered(stmt: Select, filters: Filters) -> Select:
    conditions = []
    if filters.provider:
        conditions.append(AssetModel.uri == f"{ASSET_URI_PREFIX}{filters.provider}")
    if filters.dag_id:
        conditions.append(AssetEvent.source_dag_id == filters.dag_id)
    if filters.run_id:
        conditions.append(AssetEvent.source_run_id == filters.run_id)
    if filters.since:
        conditions.append(AssetEvent.timestamp >= filters.since)
    if filters.until:
        conditions.append(AssetEvent.timestamp < filters.until)
    if filters.text:
        pattern = f"%{filters.text.lower()}%"
        conditions.append(or_(func.lower(_field("artifact_key")).like(pattern),
                              func.lower(_field("filename")).like(pattern)))
    return stmt.where(and_(*conditions)) if conditions else stmt


def row(event: Any) -> dict[str, Any]:
    """One artifact as the page lists it: the manifest's facts plus where the event came from."""
    extra = dict(event.extra or {})
    return {
        "provider": extra.get("provider"),
        "artifact_key": extra.get("artifact_key"),
        "filename": extra.get("filename"),
        "size_bytes": extra.get("size_bytes"),
        "sha256": extra.get("sha256"),
        "archived_at": extra.get("archived_at") or event.timestamp.isoformat(),
        "dag_id": event.source_dag_id,
        "run_id": event.source_run_id,
        "task_id": event.source_task_id,
        "map_index": event.source_map_index,
        "event_id": event.id,
    }


def list_artifacts(
    session: Session, filters: Filters, readable_dag_ids: set[str] | None, *, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """``(total, page)``: newest first, ``limit`` capped at MAX_PAGE.

    Newest first is event id order (ids grow as events are emitted): the primary key's own index, so a page
    is read without sorting every event; the page's ids are chosen first, their manifests read after.
    """
    stmt = _filtered(_artifact_events(readable_dag_ids), filters)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    page_ids = session.scalars(
        stmt.with_only_columns(AssetEvent.id).order_by(AssetEvent.id.desc())
        .limit(min(max(limit, 1), MAX_PAGE)).offset(max(offset, 0))
    ).all()
    events = {e.id: e for e in session.execute(_artifact_events(None).where(AssetEvent.id.in_(page_ids))).all()}
    return total, [row(events[i]) for i in page_ids]


def find_artifact(session: Session, provider: str, artifact_key: str) -> Any | None:
    """The event that archived ``provider``/``artifact_key`` (any DAG: the caller checks access), or None."""
    stmt = _artifact_events(None).where(
        AssetModel.uri == f"{ASSET_URI_PREFIX}{provider}", _field("artifact_key") == artifact_key
    )
    return session.execute(stmt.order_by(AssetEvent.id.asc()).limit(1)).first()


def facets(session: Session, readable_dag_ids: set[str] | None) -> dict[str, list[str]]:
    """The providers and DAGs that have artifacts, for the filter menus."""
    base = _artifact_events(readable_dag_ids).subquery()
    dags = session.scalars(select(base.c.source_dag_id).distinct().order_by(base.c.source_dag_id)).all()
    uris = session.scalars(
        select(AssetModel.uri).where(AssetModel.uri.startswith(ASSET_URI_PREFIX)).order_by(AssetModel.uri)
    ).all()
    return {"providers": [u[len(ASSET_URI_PREFIX):] for u in uris], "dags": [d for d in dags if d]}


def usage_summary(session: Session, filters: Filters, readable_dag_ids: set[str] | None) -> list[dict[str, Any]]:
    """The manifests' ``usage`` added up per provider, DAG and month (UTC, of the archive event). The database
    groups the events by provider, DAG, month and ``usage`` text and counts them, so Python reads one row per
    distinct usage. An artifact without usage counts as unknown, not zero."""
    when = AssetEvent.timestamp
    if session.get_bind().dialect.name == "postgresql":
        when = func.timezone("UTC", when)  # EXTRACT reads timestamptz in the session's time zone
    year, month, usage = extract("year", when), extract("month", when), _field("usage")
    keys = (AssetModel.uri, AssetEvent.source_dag_id, year, month, usage)
    stmt = _filtered(_artifact_events(readable_dag_ids), filters).with_only_columns(*keys, func.count())
    return add_up((uri[len(ASSET_URI_PREFIX):], dag_id or "", f"{int(y):04d}-{int(m):02d}", _json(text), count)
                  for uri, dag_id, y, m, text, count in session.execute(stmt.group_by(*keys)))


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


__all__ = ["Filters", "MAX_PAGE", "facets", "find_artifact", "list_artifacts", "row", "usage_summary"]
