"""OpenLineage for archived artifacts: each one is an output dataset of its download task (docs/lineage.md).

The ``openlineage`` provider's listener calls ``get_openlineage_facets_on_complete(task_instance)`` on the
operators that have it; ``ArchiveLineageMixin`` gives the download operators that method. This module imports
nothing of OpenLineage at module level (the provider is optional): the facets are built in
``core.lineage_facets``, imported only when the listener asks. Nothing here reads a connection, a Variable or
XCom (the listener may run in a forked process): everything comes from what the task recorded while it ran.
Never a URL with a query or credentials: locations are reduced to scheme, host and path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit


@dataclass(frozen=True)
class DatasetRef:
    """A dataset by OpenLineage identity, without OpenLineage's classes: what providers hand to this module.

    :param file_count: the number of files read or written, when known (the standard statistics facet).
    """

    namespace: str
    name: str
    file_count: int | None = None


def clean_uri(uri: str) -> str:
    """``uri`` with no user info, query or fragment (a local path becomes ``file:///…``)."""
    if "://" not in uri:
        return Path(uri).expanduser().resolve().as_uri()
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def location(uri: str, file_count: int | None = None) -> DatasetRef:
    """A file or object-storage location named the way OpenLineage names them (``s3://bucket`` + key path)."""
    parts = urlsplit(clean_uri(uri))
    return DatasetRef(f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/"), file_count)


def provider_dataset(provider: str, name: str) -> DatasetRef:
    """Something held by the provider itself (a FlightHub 2 resource...): namespace = the provider's name."""
    return DatasetRef(provider, name)


def archived_dataset(manifest: dict[str, Any]) -> DatasetRef:
    """The artifact's identity: namespace = the archive root, name = ``<provider>/<artifact key>``.

    Read from the manifest's ``path``, which the archive lays out as ``<root>/<provider>/<key>/<file>``
    (each part one safe segment), so the name is exactly the key's folder in the archive."""
    root, provider, key, _filename = str(manifest["path"]).rsplit("/", 3)
    return DatasetRef(clean_uri(root).rstrip("/"), f"{provider}/{key}", 1)


def source_ids(manifest: dict[str, Any], keys: tuple[str, ...]) -> dict[str, str]:
    """The provider's ids of the artifact: the ``keys`` of the manifest's ``source`` that are set, as text."""
    source = manifest.get("source") or {}
    return {k: str(source[k]) for k in keys if source.get(k) not in (None, "")}


def artifact_lineage(manifest: dict[str, Any], ids: dict[str, str], inputs: list[DatasetRef]) -> Any:
    """The ``OperatorLineage`` of one archived artifact (needs the openlineage provider)."""
    from artifact_harvest.core.lineage_facets import artifact_output, operator_lineage

    stored = location(str(manifest["path"]))
    return operator_lineage(inputs, [artifact_output(archived_dataset(manifest), stored, manifest, ids)])


def transfer_lineage(inputs: list[DatasetRef], outputs: list[DatasetRef]) -> Any:
    """An ``OperatorLineage`` of plain datasets (an upload: the photos in, the provider's resource out)."""
    from artifact_harvest.core.lineage_facets import operator_lineage, output

    return operator_lineage(inputs, [output(ref) for ref in outputs])


class ArchiveLineageMixin:
    """For download operators: the archived artifact as the task's output dataset.

    The operator sets ``archived_manifest`` when it archived (or found) the artifact; the run named in it is the
    one that wrote it (``alreadyArchived`` for any other). Providers name the ``source`` keys that are their
    ids (``lineage_source_keys``) and may add input datasets (``lineage_inputs``).
    """

    lineage_source_keys: ClassVar[tuple[str, ...]] = ()
    archived_manifest: dict[str, Any] | None = None

    def lineage_inputs(self, manifest: dict[str, Any]) -> list[DatasetRef]:
        """The datasets the artifact was made from, where the provider knows them."""
        return []

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Called by the openlineage listener once the task succeeded; empty lineage when nothing was archived."""
        manifest = self.archived_manifest
        if not manifest or not manifest.get("path"):
            from artifact_harvest.core.lineage_facets import operator_lineage

            return operator_lineage([], [])
        # the manifest names the run that wrote it: any other run found the artifact archived already
        writer = (manifest.get("dag_id"), manifest.get("run_id"))
        ours = writer == (getattr(task_instance, "dag_id", None), getattr(task_instance, "run_id", None))
        return artifact_lineage({**manifest, "already_archived": not ours},
                                source_ids(manifest, self.lineage_source_keys), self.lineage_inputs(manifest))
