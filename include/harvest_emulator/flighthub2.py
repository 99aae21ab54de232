"""DJI FlightHub 2 routes: open modeling (upload → callback → start → poll → zip), model management, and a
minimal S3 endpoint for the photo upload.

Served under ``/openapi/v0.1`` and ``/openapi/v2.0``. Every answer is HTTP 200 with the ``{code, message,
data}`` envelope, failures included (200401 bad/missing token, 200403 wrong project), as the live gateways do.

Emulator conventions for what the docs leave open (recorded, not documented by DJI):
- ``download-url/{file_id}`` accepts an open model's ``zip_file_key`` (a blob id) or a model-management
  model ``id``; the URL is empty while the archive is being compressed.
- ``store_path`` is ``fh/organizations/emu-org/open_reconstruction/tmp/<resource_uuid>/{fileName}``.
- A refreshed upload credential (second ``obtain_token``) may keep uploading into an earlier resource.
- Errors the docs do not number use 210400 (invalid request) and 210404 (not found).
- ``open_model/models/running`` pages like the project list (``page``, ``page_size``; no total; an empty page
  is ``list: null``), oldest job first; the page size when the client sends none is the config key
  ``flighthub2_page_size`` (default 10), so a test can make the list longer than one page.

Records live in ``state.jobs`` (cleared by reset): ``flighthub2`` = open models (stage clock),
``flighthub2.models`` = model management, ``flighthub2.resources`` = uploaded batches,
``flighthub2.keys`` = issued STS keys. Scenarios (``push_scenario("flighthub2", ...)``), consumed by
start / model create: ``outcome`` (reconstruction_failed | resource_failed | canceled | zip_failed | never),
``outcomes`` (``{model type: outcome}``, per type of one start, e.g. ``{"2d": "reconstruction_failed"}``),
``error_code``, ``size`` (model file bytes), ``create_at`` (epoch of a model-management model).
"""

from __future__ import annotations

import asyncio

import hashlib
import itertools
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from .credentials import FLIGHTHUB2_PROJECT_UUID, FLIGHTHUB2_TOKEN
from .jobs import Job
from .serving import base_url, storage_error
from .state import STATE, EmulatorState

PROVIDER = "flighthub2"
MODELS, RESOURCES, KEYS = "flighthub2.models", "flighthub2.resources", "flighthub2.keys"
PREFIX = r"/openapi/{version:v0\.1|v2\.0}"
ORG_PATH = "fh/organizations/emu-org/open_reconstruction/tmp"
DEFAULT_SIZE = 256 * 1024
KEY_LIFETIME = 3600
DEMO_FILE_ID = "1001"
#: page size of the running list when the client sends none (config ``flighthub2_page_size``)
DEFAULT_PAGE_SIZE = 10

#: model type name → (start body field, start response field, model_type enum, success status)
TYPES = {
    "2d": ("parameter_2d", "model_2d", 1, 9),
    "3d": ("parameter_3d", "model_3d", 2, 15),
    "3dgs": ("parameter_3dgs", "model_3dgs", 3, 15),
    "lidar": ("parameter_lidar", "model_lidar", 4, 15),
}
#: images one reconstruction accepts, per model type
IMAGE_LIMITS = {"2d": (5, 20_000), "3d": (5, 20_000), "lidar": (5, 20_000), "3dgs": (10, 4_000)}


def _stages(outcome: str | None, success: int) -> list[str]:
    """Stages "model_status:reconstruction_progress:zip_status:zip_progress" for a scenario outcome."""
    queued, running, done = "12:0:0:0", "14:50:0:0", f"{success}:100"
    return {
        None: [queued, running, f"{done}:0:0", f"{done}:1:50", f"{done}:2:100"],
        "reconstruction_failed": [queued, running, "8:50:0:0"],
        "resource_failed": [queued, "13:0:0:0"],
        "canceled": [queued, running, "16:50:0:0"],
        "zip_failed": [queued, running, f"{done}:0:0", f"{done}:1:30", f"{done}:3:30"],
        "never": [queued, running],
    }[outcome]


def ok(data: Any = None, message: str = "success") -> web.Response:
    body: dict[str, Any] = {"code": 0, "message": message}
    if data is not None:
        body["data"] = data
    return web.json_response(body)


def err(code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message})


def _refused(request: web.Request, project: bool = True) -> web.Response | None:
    token = request.headers.get("X-User-Token", "")
    if not token:
        return err(200401, "X-User-Token not found or empty")
    if token != FLIGHTHUB2_TOKEN:
        return err(200401, "X-User-Token is invalid")
    if project and request.headers.get("X-Project-Uuid") != FLIGHTHUB2_PROJECT_UUID:
        return err(200403, "no permission for this project")
    return None


_ids = itertools.count(2000)
#: numbers the start requests: each open model's ``start_id`` says which start created it
_starts = itertools.count(1)


def _seed(state: EmulatorState) -> None:
    """Finished model-management models (a day and an hour old) so the demo's sweep finds something in a
    manual run's interval: the day before today (logical date now) or the 24 h before it (no logical date)."""
    now = time.time()
    for model_id, age in ((1000, 86400 + 600), (int(DEMO_FILE_ID), 3600)):
        _add_model(state, model_id, f"seeded-{model_id}", now - age, DEFAULT_SIZE, ["ready"])


def _add_model(state: EmulatorState, model_id: int, name: str, create_at: float, size: int,
               stages: list[str]) -> Job:
    blob = state.blobs.create(size, filename=f"model-{model_id}.zip")
    data = {"id": model_id, "name": name, "file_type": "model_3d", "show_on_map": True, "size": size,
            "create_at": int(create_at), "update_at": int(create_at), "blob_id": blob.blob_id}
    job = Job(str(model_id), stages, data=data)
    state.jobs[MODELS][job.job_id] = job
    return job


def _view(job: Job, state: EmulatorState, stage: str) -> dict[str, Any]:
    status, progress, zip_status, zip_progress = (int(x) for x in stage.split(":"))
    if job.data.get("stopped") and status in (12, 14):
        status = 16
    failed = status in (8, 13, 16) or zip_status == 3
    return {
        "resource_uuid": job.data["resource_uuid"], "model_uuid": job.job_id, "model_type": job.data["model_type"],
        "model_status": status, "model_size": job.data["size"] if zip_status == 2 else 0,
        "reconstruction_progress": progress, "error_code": job.data["error_code"] if failed else 0,
        "zip_status": zip_status, "zip_progress": zip_progress,
        "zip_file_key": job.data["blob_id"] if zip_status == 2 else "",
    }


# -- organization / project ------------------------------------------------------------------------------
async def projects(request: web.Request) -> web.Response:
    if refused := _refused(request, project=False):
        return refused
    page = int(request.query.get("page", 1))
    items = [{"uuid": FLIGHTHUB2_PROJECT_UUID, "name": "Emulator project", "introduction": "", "org_uuid": "emu-org",
              "created_at": 1767225600000, "updated_at": 1767225600000,
              "project_work_center_point": {"latitude": 22.54, "longitude": 113.95}}]
    return ok({"list": items if page == 1 else None})


def _issue_key(state: EmulatorState, resource_uuid: str) -> dict[str, Any]:
    key_id = "STS." + uuid.uuid4().hex[:20]
    secret = uuid.uuid4().hex
    expire = int(time.time()) + KEY_LIFETIME
    state.jobs[KEYS][key_id] = Job(key_id, ["valid"], data={"resource_uuid": resource_uuid, "expire": expire})
    return {"access_key_id": key_id, "secret_access_key": secret, "session_token": "emu-session-" + secret[:12],
            "expire_time": expire}


async def project_sts(request: web.Request) -> web.Response:
    if refused := _refused(request):
        return refused
    key = _issue_key(request.app[STATE], "")
    return ok({"endpoint": f"{base_url(request)}/s3", "provider": "aws", "region": "emu-1", "bucket": "fh2-project",
               "object_key_prefix": f"fh/projects/{FLIGHTHUB2_PROJECT_UUID}",
               "credentials": {"access_key_id": key["access_key_id"], "access_key_secret": key["secret_access_key"],
                               "security_token": key["session_token"], "expire": KEY_LIFETIME, "platform": 0}})


# -- open modeling ---------------------------------------------------------------------------------------
async def obtain_token(request: web.Request) -> web.Response:
    if refused := _refused(request):
        return refused
    state = request.app[STATE]
    resource_uuid = str(uuid.uuid4())
    state.jobs[RESOURCES][resource_uuid] = Job(resource_uuid, ["1"], data={
        "callback_param": "cb-" + uuid.uuid4().hex, "objects": {}, "files": {}, "status": 0, "name": ""})
    external = state.config.get("upload_endpoint")  # a real S3 API (moto in tests) instead of the minimal one
    return ok({"cloud_name": "aws", **_issue_key(state, resource_uuid), "region": "us-east-1" if external else "emu-1",
               "cloud_bucket_name": UPLOAD_BUCKET, "end_point": external or f"{base_url(request)}/s3",
               "store_path": f"{ORG_PATH}/{resource_uuid}/{{fileName}}",
               "callback_param": state.jobs[RESOURCES][resource_uuid].data["callback_param"]})


async def upload_callback(request: web.Request) -> web.Response:
    if refused := _refused(request):
        return refused
    body = await request.json()
    resource = request.app[STATE].jobs[RESOURCES].get(str(body.get("resource_uuid")))
    if resource is None:
        return err(210404, "resource not found")
    if body.get("callback_param") != resource.data["callback_param"]:
        return err(210400, "callback_param does not match the upload credential")
    files = body.get("files") or []
    if not 1 <= len(files) <= 100:
        return err(210400, "files must hold 1 to 100 entries")
    if endpoint := request.app[STATE].config.get("upload_endpoint"):
        found = await asyncio.to_thread(_external_objects, endpoint, resource.job_id)
        resource.data["objects"].update({name: etag for name, (etag, _) in found.items()})
        resource.data.setdefault("sizes", {}).update({name: size for name, (_, size) in found.items()})
    for f in files:
        stored = resource.data["objects"].get(f.get("name"))
        if stored is None or stored != str(f.get("etag", "")).strip('"'):
            return err(210400, f"file {f.get('name')!r} was not uploaded or its etag does not match")
    resource.data["files"].update({f["name"]: f["etag"] for f in files})
    resource.data["status"] = 1
    if body.get("resource_name"):
        resource.data["name"] = body["resource_name"]
    return ok({"resource_uuid": resource.job_id, "upload_count": len(files),
               "file_name_list": [f["name"] for f in files]})


async def resource_details(request: web.Request) -> web.Response:
    if refused := _refused(request):
        return refused
    resource = request.app[STATE].jobs[RESOURCES].get(request.match_info["resource_uuid"])
    if resource is None:
        return err(210404, "resource not found")
    if request.method == "DELETE":
        resource.data.update(status=3, files={})
        return ok()
    names = sorted(resource.data["files"])
    return ok({"resource_uuid": resource.job_id, "status": resource.data["status"],
               "resource_size": sum(resource.data.get("sizes", {}).get(n, 0) for n in names),
               "file_names": names or None})


async def start(request: web.Request) -> web.Response:
    if refused := _refused(request):
        return refused
    state = request.app[STATE]
    body = await request.json()
    resource = state.jobs[RESOURCES].get(str(body.get("resource_uuid")))
    if resource is None or resource.data["status"] != 1 or not resource.data["files"]:
        return err(210400, "resource not found or has no imported files")
    requested = {name: spec for name, spec in TYPES.items() if body.get(spec[0]) is not None}
    if not requested:
        return err(210400, "at least one parameter_* is required")
    for name, spec in requested.items():
        try:
            json.loads(body[spec[0]])
        except (TypeError, ValueError):
            return err(210400, f"{spec[0]} must be a JSON document serialized into a string")
    images = len(resource.data["files"])
    for name in requested:
        low, high = IMAGE_LIMITS[name]
        if not low <= images <= high:
            return err(210400, f"{name} reconstruction needs {low}-{high} images, the resource has {images}")
    scenario = state.next_scenario(PROVIDER)
    start_id = next(_starts)
    answer = {}
    for name, (_, field, model_type, success) in requested.items():
        model_uuid = str(uuid.uuid4())
        blob = state.blobs.create(int(scenario.get("size", DEFAULT_SIZE)), filename=f"{model_uuid}.zip")
        outcome = (scenario.get("outcomes") or {}).get(name, scenario.get("outcome"))
        state.add_job(PROVIDER, Job(model_uuid, _stages(outcome, success), scenario=scenario, data={
            "resource_uuid": resource.job_id, "model_type": model_type, "size": blob.size, "blob_id": blob.blob_id,
            "error_code": int(scenario.get("error_code", 30001)), "parameters": body[TYPES[name][0]],
            "start_id": start_id}))
        answer[field] = {"uuid": model_uuid, "status": 12, "sub_error_code": 0}
    return ok(answer)


async def stop(request: web.Request) -> web.Response:
    if refused := _refused(request):
        return refused
    job = request.app[STATE].jobs[PROVIDER].get(request.match_info["model_uuid"])
    if job is None:
        return err(210404, "model not found")
    job.data["stopped"] = True
    return ok()


async def open_model(request: web.Request) -> web.Response:
    if refused := _refused(request):
        return refused
    state = request.app[STATE]
    job = state.jobs[PROVIDER].get(request.match_info["model_uuid"])
    if job is None or job.data.get("deleted"):
        return err(210404, "model not found")
    if request.method == "DELETE":
        job.data.update(stopped=True, deleted=True)
        return ok()
    return ok(_view(job, state, job.observe(state.config)), message="")


async def running(request: web.Request) -> web.Response:
    if refused := _refused(request):
        return refused
    state = request.app[STATE]
    views = [_view(job, state, job.peek(state.config)) for job in state.jobs[PROVIDER].values()
             if not job.data.get("deleted")]
    listed = [v for v in views if v["model_status"] in (12, 14)]
    page = int(request.query.get("page", 1))
    size = int(request.query.get("page_size") or state.config.get("flighthub2_page_size", DEFAULT_PAGE_SIZE))
    return ok({"list": listed[(page - 1) * size : page * size] or None})


# -- model management ------------------------------------------------------------------------------------
def _public(job: Job) -> dict[str, Any]:
    return {k: v for k, v in job.data.items() if k != "blob_id"}


async def list_models(request: web.Request) -> web.Response:
    if refused := _refused(request):
        return refused
    page, size = int(request.query.get("page", 1)), int(request.query.get("page_size", 10))
    models = sorted(request.app[STATE].jobs[MODELS].values(), key=lambda j: int(j.job_id))
    chunk = [_public(j) for j in models[(page - 1) * size : page * size]]
    return ok({"list": chunk or None})


async def model_details(request: web.Request) -> web.Response:
    if refused := _refused(request):
        return refused
    state = request.app[STATE]
    job = state.jobs[MODELS].get(request.match_info["model_id"])
    if job is None:
        return err(210404, "model not found")
    url = state.signed_url(base_url(request), job.data["blob_id"])
    return ok({**_public(job), "user_name": "emulator", "url": url, "preview_url": url})


async def create_model(request: web.Request) -> web.Response:
    if refused := _refused(request):
        return refused
    state = request.app[STATE]
    body = await request.json()
    if not body.get("name") or not body.get("reconstruction_type"):
        return err(210400, "name and reconstruction_type are required")
    scenario = state.next_scenario(PROVIDER)
    job = _add_model(state, next(_ids), body["name"], float(scenario.get("create_at", time.time())),
                     int(scenario.get("size", DEFAULT_SIZE)), ["zipping", "ready"])
    return ok({"id": job.data["id"]})


async def download_url(request: web.Request) -> web.Response:
    """Empty ``url`` while compressing (open model: zip_status < 2; management model: first stage)."""
    if refused := _refused(request):
        return refused
    state = request.app[STATE]
    file_id = request.match_info["file_id"]
    for job in state.jobs[PROVIDER].values():
        if job.data["blob_id"] == file_id:
            ready = _view(job, state, job.peek(state.config))["zip_status"] == 2
            url = state.signed_url(base_url(request), file_id) if ready else ""
            return ok({"url": url, "id": 0})
    job = state.jobs[MODELS].get(file_id)
    if job is None:
        return err(210404, f"model file {file_id} not found")
    ready = job.observe(state.config) == "ready"
    return ok({"url": state.signed_url(base_url(request), job.data["blob_id"]) if ready else "", "id": job.data["id"]})


# -- the upload store ------------------------------------------------------------------------------------
UPLOAD_BUCKET = "fh2-open-model"


def _external_objects(endpoint: str, resource_uuid: str) -> dict[str, tuple[str, int]]:
    """``{name: (etag, size)}`` of what was uploaded for the resource to the external store (the provider's view)."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="emu-provider",
                          aws_secret_access_key="emu-provider-secret")
    prefix = f"{ORG_PATH}/{resource_uuid}/"
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=UPLOAD_BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            objects[obj["Key"][len(prefix):]] = (obj["ETag"].strip('"'), obj["Size"])
    return objects


# minimal S3 (path-style), the default upload store
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


async def s3_object(request: web.Request) -> web.StreamResponse:
    """PUT/HEAD ``/s3/{bucket}/{key}``: the SigV4 signature is not verified, the access key id is."""
    state = request.app[STATE]
    match = _CREDENTIAL.search(request.headers.get("Authorization", ""))
    key = state.jobs[KEYS].get(match.group(1)) if match else None
    if key is None:
        return storage_error(403, "InvalidAccessKeyId", "The access key id you provided does not exist.")
    if key.data["expire"] < time.time():
        return storage_error(400, "ExpiredToken", "The provided token has expired.")
    path = request.match_info["key"]
    parts = path.rsplit("/", 2)
    resource = state.jobs[RESOURCES].get(parts[-2]) if len(parts) == 3 else None
    if resource is None or not path.startswith(ORG_PATH):
        return storage_error(403, "AccessDenied", "Access denied for this key.")
    name = parts[-1]
    if request.method == "HEAD":
        etag = resource.data["objects"].get(name)
        return web.Response(status=200 if etag else 404, headers={"ETag": f'"{etag}"'} if etag else {})
    if request.headers.get("x-amz-content-sha256", "").startswith("STREAMING-"):
        return storage_error(501, "NotImplemented", "aws-chunked uploads are not supported by the emulator")
    data = await request.read()
    etag = hashlib.md5(data).hexdigest()
    resource.data["objects"][name] = etag
    resource.data.setdefault("sizes", {})[name] = len(data)
    return web.Response(status=200, headers={"ETag": f'"{etag}"'})


def register(app: web.Application, state: EmulatorState) -> None:
    state.add_seeder(_seed)
    r = app.router
    r.add_get(f"{PREFIX}/project", projects)
    r.add_get(f"{PREFIX}/project/sts-token", project_sts)
    r.add_post(f"{PREFIX}/open_model/stores/obtain_token", obtain_token)
    r.add_post(f"{PREFIX}/open_model/stores/upload_callback", upload_callback)
    r.add_route("GET", f"{PREFIX}/open_model/resource/{{resource_uuid}}", resource_details)
    r.add_route("DELETE", f"{PREFIX}/open_model/resource/{{resource_uuid}}", resource_details)
    r.add_post(f"{PREFIX}/open_model/models/reconstruction/start", start)
    r.add_get(f"{PREFIX}/open_model/models/running", running)
    r.add_post(f"{PREFIX}/open_model/models/{{model_uuid}}/reconstruction/stop", stop)
    r.add_route("GET", f"{PREFIX}/open_model/models/{{model_uuid}}", open_model)
    r.add_route("DELETE", f"{PREFIX}/open_model/models/{{model_uuid}}", open_model)
    r.add_get(f"{PREFIX}/model", list_models)
    r.add_post(f"{PREFIX}/model/create", create_model)
    r.add_get(f"{PREFIX}/model/download-url/{{file_id}}", download_url)
    r.add_get(f"{PREFIX}/model/download-url/{{file_id}}/", download_url)
    r.add_get(f"{PREFIX}/model/{{model_id}}", model_details)
    r.add_route("PUT", "/s3/{bucket}/{key:.+}", s3_object)
    r.add_route("HEAD", "/s3/{bucket}/{key:.+}", s3_object)


#: the bundled sample photos (five: enough for 2D and 3D, not for 3DGS)
SAMPLE_PHOTOS = str(Path(__file__).resolve().parents[1] / "sample_data" / "flighthub2_photos")

#: (dag_id, conf) the demo triggers against a fresh emulator (stage_seconds ~1-2); every input explicit
DEMO_RUNS: list[tuple[str, dict[str, Any]]] = [
    ("flighthub2_reconstruct_model", {"photos": SAMPLE_PHOTOS, "model_types": ["2d", "3d"], "poll_interval": 2}),
    ("flighthub2_download_model", {"file_id": DEMO_FILE_ID, "poll_interval": 2}),
    ("flighthub2_archive_project_models", {}),
]
