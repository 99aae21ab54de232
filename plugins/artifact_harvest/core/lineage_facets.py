"""The OpenLineage objects of ``core.lineage``: imported only when the openlineage provider asks for lineage.

Datasets come in as ``core.lineage.DatasetRef`` (anything with ``namespace``, ``name``, ``file_count``); this
module imports nothing of the package, so ``core.lineage`` can import it lazily without a cycle.

Standard facets where one fits (``version`` = the sha256, ``symlinks`` = the data object's own location,
``outputStatistics``/``inputStatistics``), two custom facets for the rest (names and fields: docs/lineage.md).
"""

from __future__ import annotations

from typing import Any

import attr
from airflow.providers.openlineage.extractors.base import OperatorLineage
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import (
    DatasetFacet,
    dataset_version_dataset,
    input_statistics_input_dataset,
    output_statistics_output_dataset,
    symlinks_dataset,
)

#: custom facet names, prefixed as the OpenLineage spec asks of custom facets
ARTIFACT_FACET = "artifactHarvest_artifact"
SOURCE_FACET = "artifactHarvest_source"
SCHEMA = "https://artifact-harvest.invalid/spec/facets/1-0-0/{}.json#/$defs/{}"


@attr.define
class ArtifactFacet(DatasetFacet):
    """The archived bytes: file name, size, digests, when, and whether this run found them archived already."""

    filename: str
    sizeBytes: int  # noqa: N815 (OpenLineage fields are camelCase)
    sha256: str
    md5: str | None = attr.field(default=None)
    archivedAt: str | None = attr.field(default=None)  # noqa: N815
    alreadyArchived: bool = attr.field(default=False)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA.format("ArtifactHarvestArtifactFacet", "ArtifactHarvestArtifactFacet")


@attr.define
class SourceFacet(DatasetFacet):
    """Where the provider keeps the artifact: the provider and its ids (file id, task id, model, export...)."""

    provider: str
    ids: dict[str, str] = attr.field(factory=dict)

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA.format("ArtifactHarvestSourceFacet", "ArtifactHarvestSourceFacet")


def artifact_output(ref: Any, stored: Any, manifest: dict[str, Any], ids: dict[str, str]) -> OutputDataset:
    """The archived artifact ``ref`` as an output dataset, ``stored`` its data object's location (``symlinks``);
    no ``outputStatistics`` when this run wrote nothing (the artifact was archived already)."""
    facets: dict[str, Any] = {
        "version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=str(manifest["sha256"])),
        "symlinks": symlinks_dataset.SymlinksDatasetFacet(
            identifiers=[symlinks_dataset.Identifier(namespace=stored.namespace, name=stored.name, type="file")]),
        ARTIFACT_FACET: ArtifactFacet(
            filename=str(manifest["filename"]), sizeBytes=int(manifest["size_bytes"]),
            sha256=str(manifest["sha256"]), md5=manifest.get("md5"), archivedAt=manifest.get("archived_at"),
            alreadyArchived=bool(manifest.get("already_archived"))),
        SOURCE_FACET: SourceFacet(provider=str(manifest.get("provider") or ""), ids=ids),
    }
    written = {} if manifest.get("already_archived") else {
        "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            size=int(manifest["size_bytes"]), fileCount=1)}
    return OutputDataset(namespace=ref.namespace, name=ref.name, facets=facets, outputFacets=written)


def output(ref: Any) -> OutputDataset:
    stats = {} if ref.file_count is None else {"outputStatistics": (
        output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(fileCount=ref.file_count))}
    return OutputDataset(namespace=ref.namespace, name=ref.name, outputFacets=stats)


def input_dataset(ref: Any) -> InputDataset:
    stats = {} if ref.file_count is None else {
        "inputStatistics": input_statistics_input_dataset.InputStatisticsInputDatasetFacet(fileCount=ref.file_count)}
    return InputDataset(namespace=ref.namespace, name=ref.name, inputFacets=stats)


def operator_lineage(inputs: list[Any], outputs: list[OutputDataset]) -> OperatorLineage:
    return OperatorLineage(inputs=[input_dataset(ref) for ref in inputs], outputs=outputs)
