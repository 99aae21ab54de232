"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point.

The connection forms are declarative (``conn-fields`` / ``ui-field-behaviour``): the deprecated
``get_connection_form_widgets`` methods need wtforms, which Airflow 3.3 no longer ships. What each field holds
and where each key is: docs/connections.md; the extras' defaults: docs/configuration.md.
"""

from __future__ import annotations

from typing import Any

from artifact_harvest.provider_config import config_section


def _field(label: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": ["string", "null"], **schema}}


def _required(label: str, description: str, **schema: Any) -> dict[str, Any]:
    """A non-nullable type is what the connection form marks as required (*)."""
    return {"label": label, "description": f"Required. {description}", "schema": {"type": "string", "minLength": 1,
                                                                                 **schema}}


# Standard fields take no help text, only labels and placeholders: the host and key placeholders say the
# regions and where each key is; the Description placeholder holds the whole text (served by the API;
# Airflow 3.3.2's form does not show it).
FLIGHTHUB2_HELP = (
    "Base URL, one per region (an organization key works only on the region that issued it): "
    "China https://es-flight-api-cn.djigate.com · Europe https://es-flight-api-eu.djigate.com · "
    "United States https://es-flight-api-us.djigate.com · On-premises http://<your server>:30812. "
    "Organization key: FlightHub 2 web UI → My Organization → Organization Settings → FlightHub Sync → "
    "Organization Key (some versions: OpenAPI or Cloud Interconnect). "
    "Project UUID (required, under Extra Fields): the project's uuid from GET /openapi/v0.1/project."
)
MINIMAX_HELP = (
    "Base URL by platform (the API key must belong to it): International https://api.minimax.io · "
    "Mainland China https://api.minimaxi.com. API key: platform.minimax.io (or platform.minimaxi.com) → "
    "Account Management → API Keys; pay-as-you-go keys start with sk-api-, subscription keys with sk-cp-."
)
QIANFAN_HELP = (
    "Base URL: https://qianfan.baidubce.com (one host for every region). Access key (AK) and secret key (SK): "
    "Baidu AI Cloud console (console.bce.baidu.com) → your avatar → Security Authentication → Access Key "
    "(IAM → Access keys); the key's user needs QianfanFullControlAccessPolicy or "
    "QianfanModelTuningFullControlAccessPolicy."
)


def _rate_field(provider: str, default: float, source: str) -> dict[str, Any]:
    """The connection's request pace (``core.pace``); empty means the provider's default."""
    return {
        "label": "Requests per second",
        "description": f"Pace of all calls of this connection, shared by every wait, sensor and operator "
        f"(empty: {default:g}/s, {source}). Rate-limit answers slow it down by themselves; see docs/pacing.md.",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    }


#: Airflow 3.3.2's Test button in the connection list sends port 0 for a connection without one and then
#: refuses to test ("host or port differs from the stored connection"): store the port
PORT_HINT = "443 for https (set it: the connection list's Test button needs a stored port)"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "artifact-harvest",
        "name": "Artifact Harvest",
        "description": "DJI FlightHub 2, MiniMax and Baidu Qianfan artifacts: start, wait (deferrable), "
        "download (resumable, verified) and archive.",
        "versions": ["0.1.0"],
        "config": config_section(),
        "connection-types": [
            {
                "connection-type": "flighthub2",
                "hook-class-name": "artifact_harvest.flighthub2.hook.FlightHub2Hook",
                "hook-name": "DJI FlightHub 2",
                "conn-fields": {
                    "project_uuid": _required(
                        "Project UUID",
                        "Sent as X-Project-Uuid: data.list[].uuid of GET /openapi/v0.1/project (Test lists "
                        "whether the key sees it); the key's user must be a member of the project.",
                    ),
                    "language": _field(
                        "Language", "Language of FlightHub 2's messages (X-Language).", enum=["English", "Chinese"],
                        default="English",
                    ),
                    "verify_ssl": {
                        "label": "Verify TLS",
                        "description": "Verify TLS certificates (turn off only for a trusted on-premises host).",
                        "schema": {"type": "boolean", "default": True},
                    },
                    "rate_limit_rps": _rate_field("flighthub2", 5, "DJI publishes no quota"),
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "extra"],
                    "relabeling": {"host": "Base URL (region host)",
                                   "password": "Organization key (X-User-Token)"},
                    "placeholders": {
                        "host": "https://es-flight-api-eu.djigate.com (EU); -cn China; -us US; "
                        "on-premises http://<server>:30812",
                        "password": "My Organization → Organization Settings → FlightHub Sync → Organization Key",
                        "port": PORT_HINT,
                        "description": FLIGHTHUB2_HELP,
                    },
                },
            },
            {
                "connection-type": "minimax",
                "hook-class-name": "artifact_harvest.minimax.hook.MiniMaxHook",
                "hook-name": "MiniMax",
                "conn-fields": {
                    "path_prefix": _field(
                        "Path prefix",
                        "Prefix for gateways that serve e.g. /minimax/v1/files/retrieve; empty for MiniMax itself.",
                    ),
                    "group_id": _field("Group ID", "Sent as GroupId only when set (older accounts; current keys "
                                       "answer 1004 token not match group when it is set)."),
                    "verify_ssl": {
                        "label": "Verify TLS",
                        "description": "Verify TLS certificates.",
                        "schema": {"type": "boolean", "default": True},
                    },
                    "rate_limit_rps": _rate_field("minimax", 10, "MiniMax's documented speech-query limit"),
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "extra"],
                    "relabeling": {"host": "Base URL (platform host)", "password": "API key"},
                    "placeholders": {
                        "host": "https://api.minimax.io (International) or https://api.minimaxi.com (Mainland China)",
                        "password": "Account Management → API Keys (sk-api-… or sk-cp-…)",
                        "port": PORT_HINT,
                        "description": MINIMAX_HELP,
                    },
                },
            },
            {
                "connection-type": "qianfan",
                "hook-class-name": "artifact_harvest.qianfan.hook.QianfanHook",
                "hook-name": "Baidu Qianfan",
                "conn-fields": {
                    "sign_expiration_seconds": {
                        "label": "Signature lifetime (s)",
                        "description": "expirationPeriodInSeconds of each bce-auth-v1 signature.",
                        "schema": {"type": ["integer", "null"], "minimum": 1, "default": 300},
                    },
                    "verify_ssl": {
                        "label": "Verify TLS",
                        "description": "Verify TLS certificates.",
                        "schema": {"type": "boolean", "default": True},
                    },
                    "rate_limit_rps": _rate_field("qianfan", 5, "Qianfan publishes no console-API quota"),
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "extra"],
                    "relabeling": {"host": "Base URL", "login": "Access key (AK)", "password": "Secret key (SK)"},
                    "placeholders": {
                        "host": "https://qianfan.baidubce.com",
                        "login": "console.bce.baidu.com → avatar → Security Authentication → Access Key",
                        "password": "the SK shown next to the AK (Access Key page)",
                        "port": PORT_HINT,
                        "description": QIANFAN_HELP,
                    },
                },
            },
        ],
    }
