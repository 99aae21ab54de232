"""Worker-side steps: upload photos, start reconstruction (once per task instance), list, download, clean up."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowSkipException

from artifact_harvest.core.transfer import DownloadedFile, RemoteFile
from artifact_harvest.core.errors import InvalidParameterError, ProviderError, TransientProviderError
from artifact_harvest.core.hook import HookPerTask
from artifact_harvest.core.idempotency import remember, remembered, submit_once
from artifact_harvest.core.intervals import run_interval
from artifact_harvest.core.lineage import DatasetRef, location, provider_dataset, transfer_lineage
from artifact_harvest.core.operators import DownloadAndArchiveOperator
from artifact_harvest.core.params import as_bool
from artifact_harvest.core.polling import Phase
from artifact_harvest.core.usage import Quantity, Usage
from artifact_harvest.flighthub2.hook import FlightHub2Hook, parameter_text
from artifact_harvest.flighthub2.status import MODEL_TYPES, PROVIDER, judge_open_model
from artifact_harvest.flighthub2.upload import PhotoUploader, UploadTarget, list_photos
from artifact_harvest.flighthub2.validation import check_image_count

UPLOAD_STATE = "flighthub2_upload"
STARTED_STATE = "flighthub2_started_models"


class _FlightHub2Operator(HookPerTask, BaseOperator):
    hook_class = FlightHub2Hook
    hook_args = ("api_version",)

    def __init__(self, *, conn_id: str = FlightHub2Hook.default_conn_name, api_version: str = "v0.1",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.api_version = api_version


class FlightHub2UploadPhotosOperator(_FlightHub2Operator):
    """Upload a folder of photos for open modeling and register them; returns the ``resource_uuid``.

    A retry resumes: the target (bucket, path, resource) and every uploaded ``{name: etag}`` are kept in the
    task state store, so only missing files are sent and the resource stays the same.

    :param photos: local folder or object-storage URI (``s3://bucket/prefix``, ``file:///…``) (templated).
    :param resource_uuid: an already uploaded resource; when set nothing is uploaded (templated).
    :param resource_name: display name of the resource (templated).
    :param model_types: the model types the photos are for (templated): checks FlightHub 2's image-count
        limits before anything is uploaded.
    :param max_workers: parallel uploads.
    :param checkpoint_every: save the uploaded ETags every this many files (and when the upload ends or
        fails); a crashed worker re-sends at most this many.
    """

    template_fields: Sequence[str] = ("photos", "resource_uuid", "resource_name", "model_types")

    def __init__(self, *, photos: str | None = None, resource_uuid: str | None = None,
                 resource_name: str | None = None, model_types: Sequence[str] | None = None, max_workers: int = 8,
                 checkpoint_every: int = 50, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.photos = photos
        self.model_types = model_types
        self.resource_uuid = resource_uuid
        self.resource_name = resource_name
        self.max_workers = max_workers
        self.checkpoint_every = checkpoint_every

    def execute(self, context: Context) -> str:
        if self.resource_uuid:
            self.log.info("using the already uploaded resource %s", self.resource_uuid)
            return self.resource_uuid
        if not self.photos:
            raise InvalidParameterError(PROVIDER, "photos", "give photos (a folder) or resource_uuid")
        files = list_photos(self.photos)
        check_image_count(self.model_types or (), len(files))
        saved = remembered(context, UPLOAD_STATE) or {}
        credential = self.hook.obtain_upload_credential()  # fresh keys on every try; never stored
        target = UploadTarget(**saved["target"]) if saved.get("target") else UploadTarget.from_credential(credential)
        etags: dict[str, str] = dict(saved.get("etags") or {})

        def save() -> None:
            remember(context, UPLOAD_STATE, {"target": target.to_dict(), "etags": etags})

        def keep(name: str, etag: str) -> None:
            etags[name] = etag
            if len(etags) % self.checkpoint_every == 0:
                save()

        save()
        uploader = PhotoUploader(target, credential, self.hook.obtain_upload_credential, max_workers=self.max_workers)
        try:
            uploader.upload(files, etags, keep)
        finally:
            save()  # what succeeded survives a failure: the retry sends only the rest
        names = {f.name for f in files}
        count = self.hook.upload_callback(
            target.resource_uuid, target.callback_param,
            [{"name": n, "etag": e} for n, e in sorted(etags.items()) if n in names], self.resource_name,
        )
        self.log.info("registered %d photos in resource %s", count, target.resource_uuid)
        self._uploaded = (str(self.photos), len(files), target.resource_uuid)
        return target.resource_uuid

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the photos folder in, the FlightHub 2 resource out (nothing when none was uploaded)."""
        photos, count, resource = getattr(self, "_uploaded", None) or (None, 0, None)
        return transfer_lineage([location(photos, count)] if photos else [],
                                [provider_dataset(PROVIDER, f"resource/{resource}")] if resource else [])


class FlightHub2StartReconstructionOperator(_FlightHub2Operator):
    """Start one reconstruction per model type, at most once per task instance (retries re-attach).

    Returns ``[{model_type, model_uuid}, …]`` in the order of ``model_types``, ready for mapping.

    :param resource_uuid: the uploaded resource (templated).
    :param model_types: subset of ``2d``, ``3d``, ``3dgs``, ``lidar`` (templated).
    :param parameters: ``{model_type: {algorithm parameters}}`` (templated); missing types get ``{}``.
    :param delete_resource_if_finish: let FlightHub 2 delete the resource when every job finishes.
    :param resubmit_failed: when jobs an earlier try started ended in failure, start those model types again
        (each start is paid); the types that did not fail keep their job (templated).
    :param resubmit_if_in_doubt: when a start's answer was lost and the lookup cannot match the job exactly,
        start again (may pay twice) instead of failing (templated).

    A start whose answer was lost (or whose worker died before the ids were stored) is looked up in the
    paged running list: per requested type exactly one running job of the resource that was not running
    before the start was sent. Anything else fails the task with what to check (docs/exactly-once.md).
    """

    template_fields: Sequence[str] = ("resource_uuid", "model_types", "parameters", "resubmit_failed",
                                      "resubmit_if_in_doubt")

    def __init__(self, *, resource_uuid: str, model_types: Sequence[str], parameters: dict[str, Any] | None = None,
                 delete_resource_if_finish: bool = False, resubmit_failed: bool | str = False,
                 resubmit_if_in_doubt: bool | str = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resource_uuid = resource_uuid
        self.model_types = model_types
        self.parameters = parameters
        self.delete_resource_if_finish = delete_resource_if_finish
        self.resubmit_failed = resubmit_failed
        self.resubmit_if_in_doubt = resubmit_if_in_doubt
        self._failed_types: set[str] = set()

    def execute(self, context: Context) -> list[dict[str, str]]:
        types = list(dict.fromkeys(self.model_types or []))
        parameters = {t: dict((self.parameters or {}).get(t) or {}) for t in types}
        if remembered(context, STARTED_STATE) is None:  # before paying; a retry that re-attaches pays nothing
            check_image_count(types, len(self.hook.resource(self.resource_uuid)["file_names"]))
        plan: dict[str, Any] = {}

        def sent() -> dict[str, Any]:
            """What this start sends, and what ran on the resource just before (for an exact lookup)."""
            previous = remembered(context, STARTED_STATE) or {}
            kept = {t: u for t, u in previous.items() if t in types and t not in self._failed_types}
            plan.update(
                resource_uuid=self.resource_uuid, model_types=[t for t in types if t not in kept],
                parameters={t: parameter_text(parameters[t]) for t in types if t not in kept}, kept=kept,
                before=[str(m["model_uuid"]) for m in self.hook.running_on(self.resource_uuid)],
            )
            return plan

        def submit() -> dict[str, str]:
            todo = {t: parameters[t] for t in plan["model_types"]}
            if plan["kept"]:
                self.log.info("starting only %s again; keeping %s", sorted(todo), plan["kept"])
            started = self.hook.start_reconstruction(self.resource_uuid, todo, self.delete_resource_if_finish)
            return {**plan["kept"], **started}

        started: dict[str, str] = submit_once(
            context, STARTED_STATE, submit, find=self._find, failed=self._failed, sent=sent,
            resubmit_failed=as_bool(self.resubmit_failed, "resubmit_failed", PROVIDER),
            resubmit_if_in_doubt=as_bool(self.resubmit_if_in_doubt, "resubmit_if_in_doubt", PROVIDER),
            in_doubt_help=self._in_doubt_help(types),
        )
        return [{"model_type": t, "model_uuid": started[t]} for t in types]

    def _find(self, record: dict[str, Any]) -> dict[str, str] | None:
        found = self.hook.find_started(str(record.get("resource_uuid") or self.resource_uuid),
                                       record.get("model_types") or list(self.model_types or []),
                                       record.get("before") or [])
        return None if found is None else {**(record.get("kept") or {}), **found}

    def _failed(self, started: dict[str, str]) -> str | None:
        """Why the stored jobs cannot all be re-attached: those that ended failed or canceled."""
        reasons = {}
        for model_type, model_uuid in started.items():
            result = judge_open_model(self.hook.open_model(model_uuid))
            if result.phase is Phase.FAILED:
                reasons[model_type] = result.message
        self._failed_types = set(reasons)
        return "; ".join(f"{t}: {why}" for t, why in reasons.items()) or None

    def _in_doubt_help(self, types: Sequence[str]) -> str:
        project = self.hook.client.headers.get("X-Project-Uuid", "?")
        return (
            f"Check FlightHub 2, project {project}, for {', '.join(types)} reconstructions of resource "
            f"{self.resource_uuid} started at or after that time: the running list (GET {self.hook.prefix}/"
            "open_model/models/running, every page) and the project's models. If one was started and you do "
            "not want to pay for another, keep it (or stop it: its quota is refunded) before starting again."
        )


class FlightHub2DownloadModelOperator(_FlightHub2Operator, DownloadAndArchiveOperator):
    """Download a model file through a fresh ``model/download-url/{file_id}`` URL and archive it.

    :param file_id: the model file id (templated): a model-management model ``id``, or an open model's
        ``zip_file_key`` (the documented API does not say which id an open model's archive has; assumed).
    """

    provider = PROVIDER
    template_fields: Sequence[str] = (*DownloadAndArchiveOperator.template_fields, "file_id")
    lineage_source_keys = ("model_uuid", "model_id", "file_id", "resource_uuid")

    def __init__(self, *, file_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file_id = file_id

    def lineage_inputs(self, manifest: dict) -> list[DatasetRef]:
        """A reconstructed model comes from the uploaded resource (the upload task's output dataset)."""
        resource = (manifest.get("source") or {}).get("resource_uuid")
        return [provider_dataset(PROVIDER, f"resource/{resource}")] if resource else []

    def remote_file(self, context: Context) -> RemoteFile:
        url = self.hook.download_url(str(self.file_id)).get("url")
        if not url:
            raise TransientProviderError(PROVIDER, f"file {self.file_id} is still being compressed (empty URL)")
        name = posixpath.basename(unquote(urlsplit(url).path)) or f"{self.file_id}.zip"
        return RemoteFile(url, name)

    def usage(self, downloaded: DownloadedFile, context: Context) -> Usage:
        """The model's type and its resource's image count, as FlightHub 2 reports them: an open model's
        ``model_type`` and resource ``file_names`` (a deleted resource's images are unknown), a listed
        model-management model's ``file_type``."""
        usage, source = super().usage(downloaded, context), self.source or {}
        try:
            model_type, resource_uuid = source.get("model_type"), source.get("resource_uuid")
            if source.get("model_uuid") and not (model_type and resource_uuid):
                model = self.hook.open_model(str(source["model_uuid"]))
                model_type, resource_uuid = model.get("model_type"), model.get("resource_uuid")
            names = {int(enum): name for name, (_, _, enum) in MODEL_TYPES.items()}
            if str(model_type).isdigit() and int(model_type) in names:
                usage = usage.merge(Usage.of(model_type=Quantity.reported(names[int(model_type)])))
            elif str(source.get("file_type") or "").startswith("model_"):  # a model-management model
                usage = usage.merge(Usage.of(model_type=Quantity.reported(str(source["file_type"])[6:])))
            resource = self.hook.resource(str(resource_uuid)) if resource_uuid else {}
        except ProviderError as exc:
            self.log.warning("usage partly unknown: FlightHub 2 did not answer: %s", exc)
            return usage
        if resource.get("status") == 1 and resource.get("file_names"):
            usage = usage.merge(Usage.of(images=Quantity.reported(len(resource["file_names"]), "images")))
        return usage


class FlightHub2ListModelsOperator(_FlightHub2Operator):
    """Models of the project created in ``[created_from, created_to)`` and not archived yet.

    Returns kwargs for mapping the download: ``[{file_id, artifact_key, source}, …]``. Keyed on the run's data
    interval, so a backfill archives exactly its days and a re-run archives nothing twice.

    :param created_from: interval start (templated, ISO date-time); default: the run's data interval.
    :param created_to: interval end, exclusive (templated, ISO date-time).
    """

    template_fields: Sequence[str] = ("created_from", "created_to")

    def __init__(self, *, created_from: str | None = None, created_to: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.created_from = created_from
        self.created_to = created_to

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from artifact_harvest.core.archive import Archiver

        start, end = self._interval(context)
        archiver = Archiver()
        todo = []
        for model in self.hook.all_models():
            key = f"model-{model['id']}"
            if not start <= float(model.get("create_at") or 0) < end:
                continue
            if archiver.is_archived(PROVIDER, key):
                self.log.info("model %s is already archived", model["id"])
                continue
            todo.append({"file_id": str(model["id"]), "artifact_key": key, "source": {
                "model_id": model["id"], "file_id": str(model["id"]), "name": model.get("name"),
                "file_type": model.get("file_type"), "create_at": model.get("create_at")}})
        self.log.info("%d models created in [%s, %s) to archive", len(todo), *(
            datetime.fromtimestamp(t, timezone.utc).isoformat() for t in (start, end)))
        return todo

    def _interval(self, context: Context) -> tuple[float, float]:
        """The given bounds, else the run's data interval (see ``core.intervals``)."""
        bounds = [str(v) for v in (self.created_from, self.created_to) if v not in (None, "", "None")]
        if len(bounds) == 2:
            start, end = (datetime.fromisoformat(b).timestamp() for b in bounds)
            return start, end
        start_dt, end_dt = run_interval(context, timedelta(days=1))
        return start_dt.timestamp(), end_dt.timestamp()


class FlightHub2DeleteResourceOperator(_FlightHub2Operator):
    """Free the uploaded photos' storage once the models are archived (skipped unless ``enabled``).

    :param resource_uuid: the resource (templated).
    :param enabled: delete only when true (templated, e.g. from a DAG param).
    """

    template_fields: Sequence[str] = ("resource_uuid", "enabled")

    def __init__(self, *, resource_uuid: str, enabled: bool | str = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resource_uuid = resource_uuid
        self.enabled = enabled

    def execute(self, context: Context) -> None:
        if str(self.enabled).lower() not in ("true", "1"):
            raise AirflowSkipException("delete_resource_when_done is off: the resource is kept")
        self.hook.delete_resource(self.resource_uuid)
        self.log.info("deleted resource %s", self.resource_uuid)
