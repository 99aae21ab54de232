"""FlightHub 2 status tables and the pure functions that judge one API answer.

Both the sensors' sync ``check`` and the triggers' async ``poll`` call these, so poke, reschedule and
deferrable modes cannot disagree about what a ``model_status`` or an empty download URL means.
"""

from __future__ import annotations

import logging
from enum import IntEnum
from typing import Any

from artifact_harvest.core.polling import PollResult

log = logging.getLogger(__name__)

PROVIDER = "flighthub2"


class ModelStatus(IntEnum):
    """``model_status`` of ``GET /open_model/models/{model_uuid}`` (9 and 15 are both documented as success)."""

    RECONSTRUCTION_FAILED = 8
    MAPPING_SUCCESS = 9
    REQUESTING_RESOURCE = 12
    REQUESTING_RESOURCE_FAILED = 13
    RECONSTRUCTION_EXECUTING = 14
    RECONSTRUCTION_SUCCESS = 15
    RECONSTRUCTION_CANCELED = 16


class ZipStatus(IntEnum):
    INIT = 0
    RUNNING = 1
    FINISH = 2
    FAILED = 3


class ModelType(IntEnum):
    MODEL_2D = 1
    MODEL_3D = 2
    MODEL_3DGS = 3
    MODEL_LIDAR = 4


SUCCESS = frozenset({ModelStatus.MAPPING_SUCCESS, ModelStatus.RECONSTRUCTION_SUCCESS})
FAILED = frozenset({ModelStatus.RECONSTRUCTION_FAILED, ModelStatus.REQUESTING_RESOURCE_FAILED})
CANCELED = frozenset({ModelStatus.RECONSTRUCTION_CANCELED})
RUNNING = frozenset({ModelStatus.REQUESTING_RESOURCE, ModelStatus.RECONSTRUCTION_EXECUTING})

#: DAG-level model type name → (start body field, start response field, ``model_type`` enum)
MODEL_TYPES: dict[str, tuple[str, str, ModelType]] = {
    "2d": ("parameter_2d", "model_2d", ModelType.MODEL_2D),
    "3d": ("parameter_3d", "model_3d", ModelType.MODEL_3D),
    "3dgs": ("parameter_3dgs", "model_3dgs", ModelType.MODEL_3DGS),
    "lidar": ("parameter_lidar", "model_lidar", ModelType.MODEL_LIDAR),
}


def _name(enum: type[IntEnum], value: Any) -> str:
    try:
        return f"{value} {enum(value).name}"
    except ValueError:
        return f"{value} (undocumented)"


def judge_open_model(data: dict[str, Any], file_id_field: str = "zip_file_key") -> PollResult:
    """Ready means reconstruction succeeded AND the archive is compressed (``zip_status`` 2).

    The payload's ``file_id`` is the value of ``file_id_field`` (``zip_file_key`` by default): the docs do
    not say which id ``model/download-url/{file_id}`` expects for an open model, so it is configurable.
    """
    model_uuid = data.get("model_uuid")
    status, zip_status = data.get("model_status"), data.get("zip_status")
    where = f"model {model_uuid}"
    if status in FAILED or status in CANCELED:
        return PollResult.failed(
            f"{where} ended with model_status {_name(ModelStatus, status)}, error_code {data.get('error_code')}",
            model_uuid=model_uuid, error_code=data.get("error_code"),
        )
    if status in SUCCESS:
        if zip_status == ZipStatus.FAILED:
            return PollResult.failed(
                f"{where}: compressing the model failed (zip_status 3), error_code {data.get('error_code')}",
                model_uuid=model_uuid, error_code=data.get("error_code"),
            )
        if zip_status == ZipStatus.FINISH and data.get(file_id_field):
            return PollResult.success(
                f"{where} is reconstructed and compressed",
                model_uuid=model_uuid,
                resource_uuid=data.get("resource_uuid"),
                model_type=data.get("model_type"),
                model_size=data.get("model_size"),
                file_id=str(data[file_id_field]),
            )
        return PollResult.running(
            f"{where}: compressing, zip_status {_name(ZipStatus, zip_status)}, zip_progress {data.get('zip_progress')}%"
        )
    if status not in RUNNING:
        log.warning("%s reported an undocumented model_status %r; polling on", where, status)
    return PollResult.running(
        f"{where}: model_status {_name(ModelStatus, status)}, "
        f"reconstruction_progress {data.get('reconstruction_progress')}%"
    )


def judge_download_url(data: dict[str, Any] | None, file_id: str) -> PollResult:
    """An empty ``url`` means the file is still being compressed. The URL itself never leaves the hook."""
    data = data or {}
    if data.get("url"):
        return PollResult.success(f"download URL for file {file_id} is ready", file_id=file_id, id=data.get("id"))
    return PollResult.running(f"file {file_id} is still being compressed (empty download URL)")
