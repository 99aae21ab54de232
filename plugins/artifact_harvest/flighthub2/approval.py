"""What a FlightHub 2 reconstruction run will send and use, for its approval step (core.approval)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from artifact_harvest.core.approval import Summary, quote
from artifact_harvest.flighthub2.hook import FlightHub2Hook
from artifact_harvest.flighthub2.upload import list_photos
from artifact_harvest.flighthub2.validation import check_image_count


def reconstruction_summary(params: Mapping[str, Any]) -> Summary:
    """Photos (or resource), image count, model types and parameters; the quota is images × model types.

    Counts the photos (a folder listing) or asks for the resource (one GET); raises ``InvalidParameterError``
    when FlightHub 2 would refuse the start, so nobody approves what cannot run.
    """
    types = list(dict.fromkeys(params.get("model_types") or []))
    if params.get("resource_uuid"):
        count = len(FlightHub2Hook().resource(str(params["resource_uuid"]))["file_names"])
        source = f"Resource: {quote(params['resource_uuid'])} (already uploaded, {count:,} images)"
    else:
        count = len(list_photos(str(params.get("photos") or "")))
        source = f"Photos: {quote(params.get('photos'))} ({count:,} images, uploaded to FlightHub 2 first)"
    check_image_count(types, count)
    parameters = {t: (params.get("parameters") or {}).get(t) or {} for t in types}
    sent = [
        source,
        f"Image count: {count:,}",
        f"Model types: {', '.join(types)} (one reconstruction each)",
        f"Algorithm parameters: {quote(json.dumps(parameters, sort_keys=True), 300)}",
        f"Request: one reconstruction start for {len(types)} model type{'s' if len(types) != 1 else ''}",
    ]
    uses = [f"FlightHub 2 image quota: {count:,} images × {len(types)} model "
            f"type{'s' if len(types) != 1 else ''} = {count * len(types):,} images"]
    if params.get("delete_resource_when_done"):
        uses.append("The uploaded photos are deleted from FlightHub 2 once every model is archived")
    return Summary(sent=sent, uses=uses)
