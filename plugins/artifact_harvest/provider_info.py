"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point.

The connection forms are declarative (``conn-fields`` / ``ui-field-behaviour``): the deprecated
``get_connection_form_widgets`` methods need wtforms, which Airflow 3.3 no longer ships.
"""

from __future__ import annotations

from typing import Any


def _field(label: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": ["string", "null"], **schema}}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "artifact-harvest",
        "name": "Artifact Harvest",
        "description": "DJI FlightHub 2, MiniMax and Baidu Qianfan artifacts: start, wait (deferrable), "
        "download (resumable, verified) and archive.",
        "versions": ["0.1.0"],
        "connection-types": [
            {
                "connection-type": "flighthub2",
                "hook-class-name": "artifact_harvest.flighthub2.hook.FlightHub2Hook",
                "hook-name": "DJI FlightHub 2",
                "conn-fields": {
                    "project_uuid": _field(
                        "Project UUID",
                        "Sent as X-Project-Uuid; data.list[].uuid of GET /openapi/v0.1/project.",
                    ),
                    "language": _field(
                        "Language", "Sent as X-Language.", enum=["zh", "en"], default="en"
                    ),
                    "verify_ssl": {
                        "label": "Verify TLS",
                        "description": "Verify TLS certificates (turn off only for a trusted on-premises host).",
                        "schema": {"type": "boolean", "default": True},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "extra"],
                    "relabeling": {"host": "Base URL", "password": "Organization key (X-User-Token)"},
                    "placeholders": {"host": "https://es-flight-api-cn.djigate.com"},
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
                    "group_id": _field("Group ID", "Sent as GroupId only when set (older accounts)."),
                    "verify_ssl": {
                        "label": "Verify TLS",
                        "description": "Verify TLS certificates.",
                        "schema": {"type": "boolean", "default": True},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "extra"],
                    "relabeling": {"host": "Base URL", "password": "API key"},
                    "placeholders": {"host": "https://api.minimax.io"},
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
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {"host": "Base URL", "login": "Access key (AK)", "password": "Secret key (SK)"},
                    "placeholders": {"host": "https://qianfan.baidubce.com"},
                },
            },
        ],
    }
