"""Test credentials the emulator accepts, and the Airflow connections that carry them.

Every secret is distinctive (no substring of another, nothing generic) so a test can grep task logs,
XComs and manifests for it and prove it never leaked.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

FLIGHTHUB2_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJmaDItZW11bGF0b3ItdGVzdCJ9."
    "Fh2EmuSecretSig-7Qx9Lw3Zp8Kd2Vb"
)
FLIGHTHUB2_PROJECT_UUID = "5b0e3c1a-7d2f-4e8b-9a61-2c4d8f0e7b13"
MINIMAX_API_KEY = "sk-api-MmEmuSecret8Jt4Rk2Vn6Wq1Yz5Hc3Gp"
QIANFAN_AK = "QfEmuAccessKey4Nd8Ls2Gx6Tb0PwRe"
QIANFAN_SK = "QfEmuSecretKey9Mh3Kr7Fv1Zc5JyUa"

#: the archive's S3 keys (moto accepts any; these are distinctive so a scan can find a leak)
ARCHIVE_S3_KEY_ID = "AKIAHARVESTEMU7Q2XW9"
ARCHIVE_S3_SECRET = "ArchEmuS3Secret/5Tn8Kq2Wd7Lm4Zx9Rb3Vc6Hy1Pf"
ARCHIVE_CONN_ID = "archive_s3"

SECRETS = (FLIGHTHUB2_TOKEN, MINIMAX_API_KEY, QIANFAN_AK, QIANFAN_SK, ARCHIVE_S3_SECRET)


def connections(url: str) -> dict[str, dict]:
    """The three default connections pointing at the emulator, by conn id (``airflow connections import``
    JSON: extra as a JSON string). The port is a field of its own: Airflow 3.3's Test button in the
    connection list sends a port (0 when none is stored) and refuses to test when it differs."""
    parts = urlsplit(url)
    where = {"host": f"{parts.scheme}://{parts.hostname}", **({"port": parts.port} if parts.port else {})}
    return {
        "flighthub2_default": {
            "conn_type": "flighthub2",
            **where,
            "password": FLIGHTHUB2_TOKEN,
            "extra": json.dumps({"project_uuid": FLIGHTHUB2_PROJECT_UUID, "language": "English"}),
        },
        "minimax_default": {"conn_type": "minimax", **where, "password": MINIMAX_API_KEY, "extra": "{}"},
        "qianfan_default": {"conn_type": "qianfan", **where, "login": QIANFAN_AK, "password": QIANFAN_SK},
    }


def connection_env(url: str) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables (JSON form) pointing the three default connections at the emulator."""
    env = {}
    for conn_id, conn in connections(url).items():
        if "extra" in conn:
            conn = {**conn, "extra": json.loads(conn["extra"])}
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    return env


def archive_s3_env(endpoint_url: str, root: str) -> dict[str, str]:
    """The standard ``aws`` connection ``archive_s3`` for an S3 API at ``endpoint_url``, and the Variables
    that point the archive at ``root`` (``s3://bucket/prefix``) through it."""
    conn = {
        "conn_type": "aws",
        "login": ARCHIVE_S3_KEY_ID,
        "password": ARCHIVE_S3_SECRET,
        "extra": {"endpoint_url": endpoint_url, "region_name": "us-east-1"},
    }
    return {
        f"AIRFLOW_CONN_{ARCHIVE_CONN_ID.upper()}": json.dumps(conn),
        "AIRFLOW_VAR_ARTIFACT_ARCHIVE_ROOT": root,
        "AIRFLOW_VAR_ARTIFACT_ARCHIVE_CONN_ID": ARCHIVE_CONN_ID,
    }
