"""The connection form's Test button: each hook makes one cheap authenticated call and reports the provider's
code and message. Good keys from the emulator's credentials, bad keys that it refuses."""

from __future__ import annotations

import json

import pytest

from artifact_harvest.flighthub2.hook import FlightHub2Hook
from artifact_harvest.minimax.hook import MiniMaxHook
from artifact_harvest.qianfan.hook import QianfanHook
from harvest_emulator.credentials import FLIGHTHUB2_PROJECT_UUID, QIANFAN_AK, connection_env


def bad(monkeypatch, emu, hook_class, **changes):
    """A copy of the hook's default (emulator) connection with ``changes`` applied, as a new conn id."""
    name = f"{hook_class.default_conn_name}_bad"
    conn = json.loads(connection_env(emu.url)[f"AIRFLOW_CONN_{hook_class.default_conn_name.upper()}"])
    extra = {**conn.get("extra", {}), **changes.pop("extra", {})}
    monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", json.dumps({**conn, **changes, "extra": extra}))
    return hook_class(name)


@pytest.mark.parametrize(("hook_class", "route", "said"), [
    (FlightHub2Hook, "/openapi/v0.1/project", "code 0"),
    (MiniMaxHook, "/v1/files/list", "status_code 0"),
    (QianfanHook, "/v2/model", "AK/SK signature"),
])
def test_good_key_passes_with_one_call(emu, hook_class, route, said):
    ok, message = hook_class().test_connection()
    assert ok, message
    assert said in message
    assert len([r for r in emu.control.requests() if not r["path"].startswith("/_emulator")]) == 1
    assert len(emu.control.requests(route)) == 1


@pytest.mark.parametrize(("hook_class", "changes", "expected"), [
    (FlightHub2Hook, {"password": "not-the-organization-key"}, ["code 200401", "X-User-Token is invalid"]),
    (FlightHub2Hook, {"extra": {"project_uuid": "00000000-0000-0000-0000-000000000000"}},
     ["00000000-0000-0000-0000-000000000000 is not among"]),
    (FlightHub2Hook, {"extra": {"project_uuid": ""}}, ["Project UUID", "project_uuid"]),
    (MiniMaxHook, {"password": "sk-api-NotTheKey000000000000"}, ["code 1004", "token not match group"]),
    (QianfanHook, {"password": "QfWrongSecretKey000000000000000"}, ["code SignatureDoesNotMatch", "HTTP 403",
                                                                     "signature we calculated does not match"]),
    (QianfanHook, {"login": "QfUnknownAccessKey0000000000"}, ["code InvalidAccessKeyId"]),
])
def test_bad_key_fails_with_the_providers_code_and_message(emu, monkeypatch, hook_class, changes, expected):
    ok, message = bad(monkeypatch, emu, hook_class, **changes).test_connection()
    assert not ok
    for text in expected:
        assert text in message
    for secret in ("not-the-organization-key", "sk-api-NotTheKey", "QfWrongSecretKey", QIANFAN_AK):
        assert secret not in message


def test_flighthub2_message_names_the_project(emu):
    assert FLIGHTHUB2_PROJECT_UUID in FlightHub2Hook().test_connection()[1]
