"""The Airflow home every local run uses (demo, tests, distributed stack): this project's DAGs and plugins,
no example DAGs, and the known login a user of the REST API and the UI would have."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
USERNAME = PASSWORD = "admin"


def project_airflow_env(home: Path) -> dict[str, str]:
    """Create ``home`` with a known admin password (SimpleAuthManager reads the file at start); its env."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({USERNAME: PASSWORD}))
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
