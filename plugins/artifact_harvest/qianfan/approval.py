"""What a Qianfan export run will send and use, for its approval step (core.approval)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from artifact_harvest.core.approval import Summary
from artifact_harvest.core.params import as_bool
from artifact_harvest.qianfan.status import PROVIDER
from artifact_harvest.qianfan.validation import check_model_version_id


def export_summary(params: Mapping[str, Any]) -> Summary:
    """The model version and whether a new export is forced; uses one export. Checks the version id first."""
    model = check_model_version_id(params.get("model_version_id"))
    force = as_bool(params.get("force_new_export"), "force_new_export", PROVIDER)
    if force:
        request = "one CreateModelExportTask (a running export of the version is attached to instead)"
    else:
        request = ("one CreateModelExportTask, unless the version has an export already: a finished one is "
                   "reused, a running one attached to (no new export)")
    sent = [f"Model version: {model}", f"Force a new export: {'yes' if force else 'no'}", f"Request: {request}"]
    return Summary(sent=sent, uses=[f"A Qianfan export: one model export of {model} (none when an existing "
                                    "export is reused)"])
