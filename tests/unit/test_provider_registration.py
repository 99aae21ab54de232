"""The package registers as an Airflow provider: three connection types with declarative form fields."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema

import airflow
from artifact_harvest.provider_info import get_provider_info

EXPECTED_HOOKS = {
    "flighthub2": "artifact_harvest.flighthub2.hook.FlightHub2Hook",
    "minimax": "artifact_harvest.minimax.hook.MiniMaxHook",
    "qianfan": "artifact_harvest.qianfan.hook.QianfanHook",
}


def test_provider_info_matches_airflows_schema():
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    assert info["package-name"] == "artifact-harvest"  # must equal the installed distribution's name


def test_airflow_providers_hooks_lists_the_three_types():
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "hooks", "-o", "json"],
        capture_output=True, text=True, check=True, env=os.environ.copy(), timeout=120,
    ).stdout
    rows = {row["connection_type"]: row for row in json.loads(out)}
    for conn_type, hook_class in EXPECTED_HOOKS.items():
        assert rows[conn_type]["class"] == hook_class, rows[conn_type]
        assert rows[conn_type]["package_name"] == "artifact-harvest"
        assert rows[conn_type]["conn_id_attribute_name"] == "conn_id"


def test_connection_forms_have_labelled_fields_and_behaviour():
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    widgets = pm.connection_form_widgets
    assert widgets["extra__flighthub2__project_uuid"].field["schema"]["title"] == "Project UUID"
    assert widgets["extra__flighthub2__language"].field["schema"]["enum"] == ["English", "Chinese"]
    # required: a non-nullable type is what the form marks with *
    assert widgets["extra__flighthub2__project_uuid"].field["schema"]["type"] == "string"
    assert "extra__minimax__path_prefix" in widgets and "extra__minimax__group_id" in widgets
    assert "extra__qianfan__sign_expiration_seconds" in widgets
    behaviours = pm.field_behaviours
    assert behaviours["flighthub2"]["relabeling"]["password"].startswith("Organization key")
    assert behaviours["minimax"]["relabeling"]["password"] == "API key"
    assert behaviours["qianfan"]["relabeling"] == {
        "host": "Base URL", "login": "Access key (AK)", "password": "Secret key (SK)",
    }


def test_help_texts_name_every_region_host_and_where_each_key_is():
    from airflow.providers_manager import ProvidersManager

    behaviours = ProvidersManager().field_behaviours
    help_text = {conn_type: " ".join(b["placeholders"].values()) for conn_type, b in behaviours.items()}
    for host in ("es-flight-api-cn.djigate.com", "es-flight-api-eu.djigate.com", "es-flight-api-us.djigate.com",
                 ":30812"):
        assert host in help_text["flighthub2"]
    assert "Organization Settings → FlightHub Sync → Organization Key" in help_text["flighthub2"]
    assert "api.minimax.io" in help_text["minimax"] and "api.minimaxi.com" in help_text["minimax"]
    assert "API Keys" in help_text["minimax"]
    assert "qianfan.baidubce.com" in help_text["qianfan"] and "Access Key" in help_text["qianfan"]
