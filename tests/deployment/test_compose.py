"""docker-compose.yaml and the Dockerfile, checked offline: no compose engine runs on these machines.

The Compose-spec schema checks the shape; the rest checks what a schema cannot: the topology, the image,
and that every ``AIRFLOW__SECTION__KEY`` names an option Airflow actually reads (a typo is silently ignored).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
SCHEMA = Path(__file__).with_name("compose-spec.json")

AIRFLOW_SERVICES = {
    "airflow-init": None,
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
#: variables the official image's entrypoint reads (docs: docker-stack/entrypoint.html), not Airflow config
ENTRYPOINT_VARS = {"_AIRFLOW_DB_MIGRATE", "DUMB_INIT_SETSID", "HARVEST_ADMIN_PASSWORD"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_matches_compose_spec_schema(compose):
    # the schema says draft-07 (its $schema URL lacks the "#" jsonschema keys on)
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(compose)


def test_topology(compose):
    services = compose["services"]
    assert {"postgres", "redis", "emulator", *AIRFLOW_SERVICES} <= set(services)
    for name, command in AIRFLOW_SERVICES.items():
        if command:
            assert services[name]["command"] == command, name
    assert services["redis"]["image"].startswith("redis:")
    assert services["postgres"]["image"].startswith("postgres:")
    assert "harvest_emulator" in services["emulator"]["command"]
    # the archive survives container restarts
    assert "archive" in compose["volumes"]
    assert any(v.startswith("archive:") for v in services["airflow-worker"]["volumes"])


def test_celery_executor_on_postgres_and_redis(compose):
    for name in AIRFLOW_SERVICES:
        env = compose["services"][name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://"), name


def test_image_is_built_from_the_official_airflow_image(compose):
    dockerfile = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M)
    assert froms == ["apache/airflow:3.3.2-python3.11"]  # which Python: tests/deployment/test_image_pins.py
    for name in [*AIRFLOW_SERVICES, "emulator"]:
        assert compose["services"][name]["build"] == ".", name
    # the package is installed into the image, not at container start
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in COMPOSE.read_text()
    assert re.search(r"pip install .*\\\s*$", dockerfile, flags=re.M | re.S)
    assert "/opt/artifact-harvest" in dockerfile
    # the DAGs look for their sample data beside their folder: /opt/airflow/dags/../include/sample_data
    assert "COPY --chown=airflow:0 include/sample_data /opt/airflow/include/sample_data" in dockerfile


def test_dockerignore_lets_the_package_in():
    ignore = (ROOT / ".dockerignore").read_text().split()
    for needed in ("!pyproject.toml", "!constraints.txt", "!plugins/", "!include/", "!dags/"):
        assert needed in ignore


def _airflow_option_exists(section: str, key: str) -> bool:
    from airflow.configuration import conf

    options = conf.configuration_description.get(section, {}).get("options", {})
    return key in options or conf.has_option(section, key)  # has_option is False for options without default


def test_environment_variables_are_ones_airflow_reads(compose):
    names = {
        name
        for service in AIRFLOW_SERVICES
        for name in compose["services"][service]["environment"]
    }
    assert names, "no environment at all?"
    unknown = []
    for name in sorted(names):
        if name.startswith("AIRFLOW__"):
            section, _, key = name[len("AIRFLOW__"):].lower().partition("__")
            if not _airflow_option_exists(section, key):
                unknown.append(name)
        elif not name.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_")) and name not in ENTRYPOINT_VARS:
            unknown.append(name)
    assert not unknown, f"Airflow does not read: {unknown}"


def test_the_fleet_shares_one_pace_through_the_compose_redis(compose):
    """Every triggerer and worker paces each account through one Redis (docs/pacing.md), not the broker's db."""
    for name in AIRFLOW_SERVICES:
        env = compose["services"][name]["environment"]
        url = re.fullmatch(r"\$\{HARVEST_RATE_LIMIT_URL:-(.+)\}", env["AIRFLOW__ARTIFACT_HARVEST__RATE_LIMIT_URL"])
        assert url, name
        assert url.group(1).startswith("redis://redis:6379/"), name
        assert url.group(1).rsplit("/", 1)[1] != env["AIRFLOW__CELERY__BROKER_URL"].rsplit("/", 1)[1], name


def test_default_connections_point_at_the_emulator(compose):
    from harvest_emulator.credentials import connection_env

    env_file = compose["x-airflow-common"]["env_file"][0]
    default = re.fullmatch(r"\$\{HARVEST_CONNECTIONS_ENV:-(.+)\}", env_file).group(1)
    values = {}
    for line in (ROOT / default).read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = shlex.split(value)[0]  # single-quoted: taken literally, as compose does
    expected = connection_env("http://emulator:8765")
    assert {k: json.loads(v) for k, v in values.items()} == {k: json.loads(v) for k, v in expected.items()}
    assert compose["services"]["emulator"]["ports"] == ["8765:8765"]


def test_docker_compose_config_accepts_the_file():
    try:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"no docker client: {exc}")
    if probe.returncode != 0:
        pytest.skip(f"`docker compose version` fails here ({(probe.stderr or probe.stdout).strip().splitlines()[0][:200]})")
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
