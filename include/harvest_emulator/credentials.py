"""Test credentials the emulator accepts, and the Airflow connections that carry them.

Every secret is distinctive (no substring of another, nothing generic) so a test can grep task logs,
XComs and manifests for it and prove it never leaked.
"""

from __future__ import annotations

import json

FLIGHTHUB2_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJmaDItZW11bGF0b3ItdGVzdCJ9."
    "Fh2EmuSecretSig-7Qx9Lw3Zp8Kd2Vb"
)
FLIGHTHUB2_PROJECT_UUID = "5b0e3c1a-7d2f-4e8b-9a61-2c4d8f0e7b13"
MINIMAX_API_KEY = "sk-api-MmEmuSecret8Jt4Rk2Vn6Wq1Yz5Hc3Gp"
QIANFAN_AK = "QfEmuAccessKey4Nd8Ls2Gx6Tb0PwRe"
QIANFAN_SK = "QfEmuSecretKey9Mh3Kr7Fv1Zc5JyUa"

SECRETS = (FLIGHTHUB2_TOKEN, MINIMAX_API_KEY, QIANFAN_AK, QIANFAN_SK)


def connection_env(url: str) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables (JSON form) pointing the three default connections at the emulator."""
    conns = {
        "FLIGHTHUB2_DEFAULT": {
            "conn_type": "flighthub2",
            "host": url,
            "password": FLIGHTHUB2_TOKEN,
            "extra": {"project_uuid": FLIGHTHUB2_PROJECT_UUID, "language": "English"},
        },
        "MINIMAX_DEFAULT": {"conn_type": "minimax", "host": url, "password": MINIMAX_API_KEY, "extra": {}},
        "QIANFAN_DEFAULT": {"conn_type": "qianfan", "host": url, "login": QIANFAN_AK, "password": QIANFAN_SK},
    }
    return {f"AIRFLOW_CONN_{name}": json.dumps(conn) for name, conn in conns.items()}
