"""What FlightHub 2 refuses before a reconstruction starts, checked before the (quota-consuming) start call."""

from __future__ import annotations

from collections.abc import Iterable

from artifact_harvest.core.errors import InvalidParameterError
from artifact_harvest.flighthub2.status import PROVIDER


#: images per reconstruction job, by model type (flighthub2-cli, API-FACTS §1.7.5)
IMAGE_LIMITS: dict[str, tuple[int, int]] = {"2d": (5, 20_000), "3d": (5, 20_000), "lidar": (5, 20_000),
                                            "3dgs": (10, 4_000)}
IMAGE_RULE = "FlightHub 2 reconstructs 2D, 3D and LiDAR models from 5 to 20,000 images, 3DGS from 10 to 4,000"


def check_image_count(model_types: Iterable[str], count: int) -> None:
    """Raise ``InvalidParameterError`` naming the first model type the number of images does not fit."""
    for model_type in model_types:
        if model_type not in IMAGE_LIMITS:
            raise InvalidParameterError(PROVIDER, "model_types", f"{model_type!r} is not one of "
                                        f"{', '.join(IMAGE_LIMITS)}")
        low, high = IMAGE_LIMITS[model_type]
        if not low <= count <= high:
            raise InvalidParameterError(PROVIDER, "photos", f"{count:,} images cannot make a {model_type} model "
                                        f"({low:,}–{high:,} images). {IMAGE_RULE}")


def check_project_uuid(value: object, conn_id: str) -> str:
    """The connection's required extra field ``project_uuid`` (X-Project-Uuid)."""
    text = str(value or "").strip()
    if not text:
        raise InvalidParameterError(
            PROVIDER, "project_uuid",
            f"connection {conn_id!r} has no Project UUID (extra field project_uuid, sent as X-Project-Uuid); "
            "copy data.list[].uuid of GET /openapi/v0.1/project, or the project's UUID in FlightHub 2's web UI",
        )
    return text


#: the connection's ``language`` → X-Language. Stored as a word: Airflow hands every extra value to the log
#: masker when it fetches a connection, and a two-letter code makes it warn "Skipping masking for a secret as
#: it's too short (<5 chars)" in every task log. The codes themselves are still accepted.
LANGUAGES = {"English": "en", "Chinese": "zh", "en": "en", "zh": "zh"}


def check_language(value: object) -> str:
    """The X-Language code for the connection's ``language`` (default English)."""
    text = str(value or "English").strip()
    if text not in LANGUAGES:
        raise InvalidParameterError(PROVIDER, "language", f"must be English or Chinese, got {text!r}")
    return LANGUAGES[text]
