"""FlightHub 2 OpenAPI hook: the organization key, the project, the ``{code, message, data}`` envelope.

Every call goes through the shared ``ApiClient`` (fresh ``X-Request-Id`` per attempt, one retry rule);
``parse`` checks the envelope on every answer, because FlightHub 2 reports most failures as HTTP 200 with
a non-zero ``code`` (judged by ``CODES``). Sync methods run on workers; the ``a``-prefixed twins are for
triggers.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from artifact_harvest.core.errors import InvalidParameterError, MalformedResponseError, ProviderError
from artifact_harvest.core.hook import ProviderCodes, ProviderHook
from artifact_harvest.core.http import ApiClient, ApiResponse, Call
from artifact_harvest.core.idempotency import Ambiguous
from artifact_harvest.flighthub2.status import MODEL_TYPES, PROVIDER
from artifact_harvest.flighthub2.validation import check_language, check_project_uuid

CODES = ProviderCodes(
    refused=frozenset({210429}),
    transient=frozenset({200500, 210500, 210504, 210318}),
    fatal={
        200401: "check the organization key in the connection's password (My Organization → Organization "
        "Settings → FlightHub Sync → Organization Key) and that the host is the region that issued it",
        200403: "check the connection's project_uuid and that the organization key's user is a member of that "
        "project",
    },
)
#: the upload callback accepts at most this many files per call
CALLBACK_BATCH = 100
API_VERSIONS = ("v0.1", "v2.0")


def parameter_text(params: Mapping[str, Any] | None) -> str:
    """A ``parameter_*`` value as sent: the algorithm parameters as compact JSON text."""
    return json.dumps(dict(params or {}), separators=(",", ":"), sort_keys=True)


def _list(data: Any) -> list[dict[str, Any]]:
    """``data.list``; FlightHub 2 answers empty collections with ``null``."""
    return list((data or {}).get("list") or [])


def _required(data: Any, field: str) -> Any:
    if not isinstance(data, dict) or data.get(field) in (None, ""):
        raise MalformedResponseError(PROVIDER, field, "is missing from data")
    return data[field]


@dataclasses.dataclass
class RunningWalk:
    """The page walk of ``open_model/models/running``: pages until one is empty or repeats the one before
    (a server that ignores paging), so n jobs at page size p cost ceil(n/p) + 1 calls (``page`` at the end)."""

    page: int = 1
    models: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    seen: set[str] = dataclasses.field(default_factory=set)

    def add(self, batch: list[dict[str, Any]]) -> bool:
        """Keep the page's new models; True when the walk goes on to the next page."""
        fresh = [m for m in batch if str(m.get("model_uuid")) not in self.seen]
        if not fresh:
            return False
        self.models += fresh
        self.seen.update(str(m.get("model_uuid")) for m in fresh)
        self.page += 1
        return True


class FlightHub2Hook(ProviderHook):
    """DJI FlightHub 2 OpenAPI.

    :param conn_id: connection of type ``flighthub2``: host = base URL, password = organization key
        (``X-User-Token``), extra ``project_uuid`` (``X-Project-Uuid``, required) and
        ``language`` (``X-Language``: English or Chinese).
    :param api_version: path version, ``v0.1`` (documented V1) or ``v2.0``.
    """

    conn_type = "flighthub2"
    default_conn_name = "flighthub2_default"
    hook_name = "DJI FlightHub 2"
    provider: ClassVar[str] = PROVIDER
    default_host: ClassVar[str] = "https://es-flight-api-cn.djigate.com"
    codes: ClassVar[ProviderCodes] = CODES

    def __init__(self, conn_id: str | None = None, *, api_version: str = "v0.1", **kwargs: Any) -> None:
        super().__init__(conn_id, **kwargs)
        if api_version not in API_VERSIONS:
            raise InvalidParameterError(self.provider, "api_version", f"must be v0.1 or v2.0, got {api_version!r}")
        self.api_version = api_version
        self.prefix = f"/openapi/{api_version}"

    # -- connection and envelope ---------------------------------------------------------------------
    def build_client(self, conn: Any, extra: dict[str, Any]) -> ApiClient:
        token = self.require_secret(conn, conn.password, "organization key (password)")
        headers = {"X-User-Token": token, "X-Language": check_language(extra.get("language")),
                   "X-Project-Uuid": check_project_uuid(extra.get("project_uuid"), self.conn_id)}
        return self.new_client(extra, base_url=self.base_url(conn), headers=headers, secrets=[token])

    def parse(self, resp: ApiResponse) -> Any:
        """``data`` of a ``code == 0`` answer; otherwise the error ``CODES`` (or the HTTP status) implies."""
        body = resp.json()
        if not isinstance(body, dict) or "code" not in body:
            raise resp.unexpected("code", "is missing from the envelope")
        code = body["code"]
        if code == 0 and resp.status < 300:
            return body.get("data")
        if code == 0:
            raise resp.http_error()
        message = self.redact(f"{resp.method} {resp.path}: {body.get('message') or 'no message'}")
        raise self.codes.classify(PROVIDER, resp, code, message, resp.request_id)

    def prepare(self, call: Call) -> Call:
        """Every path is under ``/openapi/{api_version}``."""
        return dataclasses.replace(call, path=self.prefix + call.path)

    # -- requests (paths below the version prefix) ---------------------------------------------------
    @staticmethod
    def _projects(page: int, page_size: int) -> Call:
        return Call("GET", "/project", {"page": page, "page_size": page_size})

    @staticmethod
    def _project_sts_token() -> Call:
        return Call("GET", "/project/sts-token")

    @staticmethod
    def _obtain_token() -> Call:
        return Call("POST", "/open_model/stores/obtain_token", resendable=True)

    @staticmethod
    def _upload_callback(resource_uuid: str, callback_param: str, files: Sequence[Mapping[str, str]],
                         resource_name: str | None) -> Call:
        """Registering the same ``{name, etag}`` again changes nothing: resendable."""
        body: dict[str, Any] = {"resource_uuid": resource_uuid, "callback_param": callback_param,
                                "files": [{"name": f["name"], "etag": f["etag"]} for f in files]}
        if resource_name:
            body["resource_name"] = resource_name[:255]
        return Call("POST", "/open_model/stores/upload_callback", json=body, resendable=True)

    @staticmethod
    def _resource(resource_uuid: str, method: str = "GET") -> Call:
        return Call(method, f"/open_model/resource/{resource_uuid}")

    @staticmethod
    def _start(resource_uuid: str, parameters: Mapping[str, Mapping[str, Any]], delete_resource_if_finish: bool
               ) -> Call:
        unknown = set(parameters) - set(MODEL_TYPES)
        if not parameters or unknown:
            raise InvalidParameterError(
                PROVIDER, "model_types", f"need a non-empty subset of {sorted(MODEL_TYPES)}, got {sorted(parameters)}"
            )
        body: dict[str, Any] = {"resource_uuid": resource_uuid, "delete_resource_if_finish": delete_resource_if_finish}
        for model_type, params in parameters.items():
            body[MODEL_TYPES[model_type][0]] = parameter_text(params)
        return Call("POST", "/open_model/models/reconstruction/start", json=body)

    @staticmethod
    def _stop(model_uuid: str) -> Call:
        return Call("POST", f"/open_model/models/{model_uuid}/reconstruction/stop", resendable=True)

    @staticmethod
    def _open_model(model_uuid: str, method: str = "GET") -> Call:
        return Call(method, f"/open_model/models/{model_uuid}")

    @staticmethod
    def _running(page: int) -> Call:
        return Call("GET", "/open_model/models/running", {"page": page})

    @staticmethod
    def _models(page: int, page_size: int) -> Call:
        return Call("GET", "/model", {"page": page, "page_size": page_size})

    @staticmethod
    def _model(model_id: int | str) -> Call:
        return Call("GET", f"/model/{model_id}")

    @staticmethod
    def _create_model(name: str, reconstruction_type: Sequence[str], task_folder_id: int, **options: Any) -> Call:
        body = {"name": name, "reconstruction_type": list(reconstruction_type), "task_folder_id": task_folder_id,
                **options}
        return Call("POST", "/model/create", json=body)

    def _download_url(self, file_id: str) -> Call:
        slash = "/" if self.api_version == "v0.1" else ""
        return Call("GET", f"/model/download-url/{file_id}{slash}")

    # -- organization / project ----------------------------------------------------------------------
    def projects(self, page: int = 1, page_size: int = 100) -> list[dict[str, Any]]:
        """Projects the organization key can see (``uuid`` is what the connection's project_uuid wants)."""
        return _list(self.send(self._projects(page, page_size)))

    def project_sts_token(self) -> dict[str, Any]:
        """Write-scoped STS credential of the project's storage (``credentials.*``, ``bucket``, ``endpoint``)."""
        return self.send(self._project_sts_token()) or {}

    # -- open modeling -------------------------------------------------------------------------------
    def obtain_upload_credential(self) -> dict[str, Any]:
        """STS keys, bucket, ``end_point``, ``store_path`` template, ``callback_param``, ``expire_time``."""
        data = self.send(self._obtain_token())
        for field in ("access_key_id", "secret_access_key", "cloud_bucket_name", "end_point", "store_path"):
            _required(data, field)
        for secret in ("secret_access_key", "session_token", "access_key_id"):
            self.redact.add(data.get(secret))
        return data

    def upload_callback(
        self, resource_uuid: str, callback_param: str, files: Sequence[Mapping[str, str]],
        resource_name: str | None = None,
    ) -> int:
        """Register uploaded ``files`` ([{name, etag}]) in batches of 100; returns the total upload_count."""
        if not files:
            raise InvalidParameterError(self.provider, "files", "at least one uploaded file is needed")
        count = 0
        for start in range(0, len(files), CALLBACK_BATCH):
            batch = files[start : start + CALLBACK_BATCH]
            data = self.send(self._upload_callback(resource_uuid, callback_param, batch, resource_name))
            count += int((data or {}).get("upload_count") or 0)
        return count

    def resource(self, resource_uuid: str) -> dict[str, Any]:
        """``status`` (1 ImportSuccess, 2 WaitingDelete, 3 Deleted), ``resource_size``, ``file_names``."""
        data = self.send(self._resource(resource_uuid)) or {}
        return {**data, "file_names": data.get("file_names") or []}

    def delete_resource(self, resource_uuid: str) -> None:
        self.send(self._resource(resource_uuid, "DELETE"))

    def start_reconstruction(
        self, resource_uuid: str, parameters: Mapping[str, Mapping[str, Any]], delete_resource_if_finish: bool = False
    ) -> dict[str, str]:
        """Start one job per model type (``2d``, ``3d``, ``3dgs``, ``lidar``); returns {type: model_uuid}."""
        data = self.send(self._start(resource_uuid, parameters, delete_resource_if_finish)) or {}
        return {t: str(_required(data.get(MODEL_TYPES[t][1]), "uuid")) for t in parameters}

    def stop_reconstruction(self, model_uuid: str) -> None:
        """Stop a running job (the image quota is refunded); the model then reports status 16."""
        self.send(self._stop(model_uuid))

    async def astop_reconstruction(self, model_uuid: str) -> None:
        await self.asend(self._stop(model_uuid))

    def open_model(self, model_uuid: str) -> dict[str, Any]:
        """``model_status``, ``reconstruction_progress``, ``zip_status``, ``zip_progress``, ``zip_file_key``..."""
        return self.send(self._open_model(model_uuid)) or {}

    async def aopen_model(self, model_uuid: str) -> dict[str, Any]:
        return await self.asend(self._open_model(model_uuid)) or {}

    def delete_open_model(self, model_uuid: str) -> None:
        """Delete the model (a running reconstruction is stopped first)."""
        self.send(self._open_model(model_uuid, "DELETE"))

    def running_models(self) -> list[dict[str, Any]]:
        """Every running reconstruction of the project (``GET open_model/models/running``, see :class:`RunningWalk`)."""
        walk = RunningWalk()
        while walk.add(_list(self.send(self._running(walk.page)))):
            pass
        return walk.models

    async def arunning_models(self) -> tuple[list[dict[str, Any]], int]:
        """:meth:`running_models` for triggers, the same page walk: (every running model, calls it took)."""
        walk = RunningWalk()
        while walk.add(_list(await self.asend(self._running(walk.page)))):
            pass
        return walk.models, walk.page

    def running_on(self, resource_uuid: str) -> list[dict[str, Any]]:
        """The running reconstructions of one resource: ``model_uuid``, ``model_type``, ``model_status``..."""
        return [m for m in self.running_models() if str(m.get("resource_uuid")) == resource_uuid]

    def find_started(
        self, resource_uuid: str, model_types: Sequence[str], before: Sequence[str]
    ) -> dict[str, str] | None:
        """The jobs a start whose answer was lost created, matched exactly: {type: model_uuid}, or None.

        A running job of ``resource_uuid`` counts when its ``model_type`` was requested and its uuid is not in
        ``before`` (what ran on the resource just before the start was sent). The running list carries no
        creation time and no parameters (API-FACTS 1.7.6), so that is all that can be matched. None when no
        requested type has such a job (not started, or already finished: only running jobs are listed);
        :class:`Ambiguous` when some types have one and others none, or a type has several.
        """
        wanted = {int(MODEL_TYPES[t][2]): t for t in model_types}
        known = set(before)
        matches: dict[str, list[str]] = {t: [] for t in model_types}
        for model in self.running_on(resource_uuid):
            model_uuid = str(model.get("model_uuid"))
            if model.get("model_type") in wanted and model_uuid not in known:
                matches[wanted[model["model_type"]]].append(model_uuid)
        if not any(matches.values()):
            return None
        if all(len(uuids) == 1 for uuids in matches.values()):
            return {t: uuids[0] for t, uuids in matches.items()}
        raise Ambiguous(
            f"new running jobs of resource {resource_uuid} per requested model type: {matches} (exactly one "
            "each was expected; a type with none may have finished already, a type with several was started "
            "by another run too)"
        )

    # -- model management ----------------------------------------------------------------------------
    def models(self, page: int = 1, page_size: int = 100) -> list[dict[str, Any]]:
        """One page of the project's models (``id``, ``name``, ``file_type``, ``size``, ``create_at`` epoch)."""
        return _list(self.send(self._models(page, page_size)))

    def all_models(self, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every model of the project: there is no total, so page until a short page comes back."""
        page = 1
        while True:
            batch = self.models(page, page_size)
            yield from batch
            if len(batch) < page_size:
                return
            page += 1

    def model(self, model_id: int | str) -> dict[str, Any]:
        """Model details (includes short-lived ``url`` / ``preview_url``: never log or store them)."""
        return self.send(self._model(model_id)) or {}

    async def amodel(self, model_id: int | str) -> dict[str, Any]:
        return await self.asend(self._model(model_id)) or {}

    def create_model(
        self, name: str, reconstruction_type: Sequence[str], task_folder_id: int, **options: Any
    ) -> int:
        """Traditional cloud reconstruction from a flight task's media folder; returns the model ``id``."""
        return int(_required(self.send(self._create_model(name, reconstruction_type, task_folder_id, **options)),
                             "id"))

    def download_url(self, file_id: str) -> dict[str, Any]:
        """``{url, id}``; an empty ``url`` means still compressing. The URL is signed: never log or store it."""
        return self.send(self._download_url(file_id)) or {}

    async def adownload_url(self, file_id: str) -> dict[str, Any]:
        return await self.asend(self._download_url(file_id)) or {}

    # -- the connection form's Test button -----------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """One project-list call: the key, its region (host) and whether the Project UUID is one of its projects."""
        try:
            project = self.client.headers["X-Project-Uuid"]
            projects = self.projects(page_size=100)
        except ProviderError as exc:
            return False, str(exc)
        if project not in {str(p.get("uuid")) for p in projects}:
            more = " (only the first 100 were checked)" if len(projects) == 100 else ""
            return False, (f"FlightHub 2 accepted the organization key, but project {project} is not among its "
                           f"{len(projects)} projects{more}: check the Project UUID and the key user's membership")
        return True, f"FlightHub 2 accepted the organization key (code 0); project {project} is visible"

