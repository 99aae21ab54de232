"""What Qianfan refuses (HTTP 400 InvalidRequestArgumentError), checked before CreateModelExportTask."""

from __future__ import annotations

import re

from artifact_harvest.core.errors import InvalidParameterError
from artifact_harvest.qianfan.status import PROVIDER

#: a model *version* id, e.g. ``amv-g73j3faikzpz`` (the Param schema uses the same pattern)
MODEL_VERSION_PATTERN = r"^amv-[a-z0-9]+$"
MODEL_VERSION_RULE = (
    "Qianfan exports model versions: the id starts with amv- followed by lower-case letters and digits, e.g. "
    "amv-g73j3faikzpz (console: 我的模型 / My models → model → version list; not the model's am- id)"
)


def check_model_version_id(value: object) -> str:
    text = str(value or "").strip()
    if not re.fullmatch(MODEL_VERSION_PATTERN, text):
        raise InvalidParameterError(PROVIDER, "model_version_id", f"{text!r} is not a model version id. "
                                    f"{MODEL_VERSION_RULE}")
    return text
