"""Each provider's paid create through a TLS proxy that breaks the answer after the provider processed it:
exactly one job, and the caller learns the outcome is in doubt (or the operator reconciles); a handshake that
fails is resent and still makes exactly one job.

Hooks and operators run unchanged; only their connection points at the proxy (``verify_ssl: false``, the
proxy's certificate is self-signed).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from artifact_harvest.core.errors import SubmissionInDoubt
from artifact_harvest.flighthub2.hook import FlightHub2Hook
from artifact_harvest.minimax.hook import MiniMaxHook
from artifact_harvest.qianfan.hook import QianfanHook
from harvest_emulator.credentials import connection_env
from tests.support import StateStore
from tests.tls_proxy import tls_proxy, tls_proxy_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

#: more faults than the hooks' five attempts: a wrong rule would meet a fault again and be counted
ALL_ATTEMPTS = 6


def through(proxy, monkeypatch, provider: str) -> None:
    """Point ``<provider>_default`` at the proxy, TLS verification off."""
    name = f"AIRFLOW_CONN_{provider.upper()}_DEFAULT"
    conn = json.loads(connection_env(proxy.url)[name])
    conn["extra"] = {**conn.get("extra", {}), "verify_ssl": False}
    monkeypatch.setenv(name, json.dumps(conn))


def qianfan_creates(emu) -> int:
    return sum(r["query"].get("Action") == "CreateModelExportTask" for r in emu.control.requests("^/v2/model$"))


def qianfan_jobs(emu, model_id: str = "amv-tls1") -> list[dict]:
    """Exports of ``model_id`` (the emulator also holds a seeded demo export)."""
    return [j for j in emu.control.jobs("qianfan") if j["data"].get("model_id") == model_id]


def flighthub2_jobs(emu) -> list[dict]:
    return [j for j in emu.control.jobs("flighthub2") if "model_type" in j["data"]]


@pytest.fixture
def resource_uuid(emu) -> str:
    """Photos uploaded straight to the emulator (before the connection is pointed at the proxy)."""
    from tests.dags.test_flighthub2_dags import upload

    return upload(FlightHub2Hook())


# (provider, the create through the hook, creates the emulator received, jobs it holds)
async def video(mode: str) -> str:
    hook = MiniMaxHook()
    args = ("a lighthouse at dawn", "T2V-01")
    return hook.create_video(*args) if mode == "sync" else await hook.acreate_video(*args)


async def speech(mode: str) -> str:
    hook = MiniMaxHook()
    args = ("Artifact Harvest archived your files.", "speech-2.8-hd", "English_Graceful_Lady")
    return hook.create_speech(*args) if mode == "sync" else await hook.acreate_speech(*args)


async def export(mode: str) -> str:
    hook = QianfanHook()
    return hook.create_export("amv-tls1") if mode == "sync" else await hook.acreate_export("amv-tls1")


CREATES: dict[str, tuple[str, Callable[[str], Any], Callable[[Any], int], Callable[[Any], list[dict]]]] = {
    "minimax-video": ("minimax", video, lambda emu: len(emu.control.requests("/v1/video_generation$")),
                      lambda emu: emu.control.jobs("minimax")),
    "minimax-speech": ("minimax", speech, lambda emu: len(emu.control.requests("/v1/t2a_async_v2$")),
                       lambda emu: emu.control.jobs("minimax")),
    "qianfan-export": ("qianfan", export, qianfan_creates, qianfan_jobs),
}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("create", list(CREATES))
@pytest.mark.parametrize("fault", ["break_record", "bare_503"])
async def test_an_answer_broken_after_the_create_is_in_doubt_and_sent_once(tls_proxy, emu, monkeypatch, create,
                                                                          mode, fault):
    provider, submit, sent, jobs = CREATES[create]
    through(tls_proxy, monkeypatch, provider)
    tls_proxy.plan(*[fault] * ALL_ATTEMPTS)
    with pytest.raises(SubmissionInDoubt, match="not sent again"):
        await submit(mode)
    assert tls_proxy.forwarded == 1 and sent(emu) == 1
    assert len(jobs(emu)) == 1  # the provider did the work once


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("create", list(CREATES))
async def test_a_failed_handshake_is_resent_and_makes_one_job(tls_proxy, emu, monkeypatch, create, mode):
    provider, submit, sent, jobs = CREATES[create]
    through(tls_proxy, monkeypatch, provider)
    tls_proxy.plan("handshake_close", "handshake_close")
    remote_id = await submit(mode)
    [job] = jobs(emu)
    assert remote_id == job["job_id"]
    assert tls_proxy.applied == ["handshake_close", "handshake_close", "pass"] and sent(emu) == 1


@pytest.mark.parametrize("fault", ["break_record", "alert", "bare_503"])
def test_flighthub2_start_broken_after_processing_is_in_doubt_and_sent_once(tls_proxy, emu, monkeypatch,
                                                                            resource_uuid, fault):
    through(tls_proxy, monkeypatch, "flighthub2")
    tls_proxy.plan(*[fault] * ALL_ATTEMPTS)
    with pytest.raises(SubmissionInDoubt, match="not sent again"):
        FlightHub2Hook().start_reconstruction(resource_uuid, {"3d": {}})
    assert tls_proxy.forwarded == 1 and len(emu.control.requests("reconstruction/start$")) == 1
    assert len(flighthub2_jobs(emu)) == 1


def test_flighthub2_start_after_failed_handshakes_makes_one_job(tls_proxy, emu, monkeypatch, resource_uuid):
    through(tls_proxy, monkeypatch, "flighthub2")
    tls_proxy.plan("handshake_close", "handshake_close")
    started = FlightHub2Hook().start_reconstruction(resource_uuid, {"3d": {}})
    [job] = flighthub2_jobs(emu)
    assert started == {"3d": job["job_id"]} and len(emu.control.requests("reconstruction/start$")) == 1


# -- the operators' in-doubt handling over the same broken answer ------------------------------------------
def test_flighthub2_operator_reconciles_a_start_broken_in_transit(tls_proxy, emu, monkeypatch, resource_uuid):
    from artifact_harvest.flighthub2.operators import FlightHub2StartReconstructionOperator

    through(tls_proxy, monkeypatch, "flighthub2")
    tls_proxy.plan("break_record")  # the start's answer; the lookup that follows passes
    operator = FlightHub2StartReconstructionOperator(task_id="start", resource_uuid=resource_uuid, model_types=["3d"])
    [started] = operator.execute({"task_state_store": StateStore()})
    [job] = flighthub2_jobs(emu)
    assert started == {"model_type": "3d", "model_uuid": job["job_id"]}
    assert len(emu.control.requests("reconstruction/start$")) == 1


def test_qianfan_operator_reconciles_a_create_broken_in_transit(tls_proxy, emu, monkeypatch):
    from artifact_harvest.qianfan.operators import QianfanCreateModelExportOperator

    through(tls_proxy, monkeypatch, "qianfan")
    tls_proxy.plan("pass", "break_record")  # the pre-check Describe passes, the create's answer breaks
    result = QianfanCreateModelExportOperator(task_id="create", model_id="amv-tls2").execute(
        {"task_state_store": StateStore()})
    [job] = qianfan_jobs(emu, "amv-tls2")
    assert result["exportId"] == job["job_id"] and qianfan_creates(emu) == 1


def test_minimax_operator_fails_without_a_second_create(tls_proxy, emu, monkeypatch):
    from artifact_harvest.minimax.operators import MiniMaxCreateVideoOperator

    through(tls_proxy, monkeypatch, "minimax")
    tls_proxy.plan(*["break_record"] * ALL_ATTEMPTS)
    with pytest.raises(AirflowFailException, match="MiniMax console"):
        MiniMaxCreateVideoOperator(task_id="create", prompt="a kite", model="T2V-01").execute(
            {"task_state_store": StateStore()})
    assert len(emu.control.requests("/v1/video_generation$")) == 1 and len(emu.control.jobs("minimax")) == 1


# -- the provider's own refusal proves nothing was done: the create is sent again ----------------------------
REFUSALS = {  # (provider, create route, fault options) as each provider answers "too many requests"
    "minimax-1002": ("minimax", "/v1/video_generation$",
                     {"kind": "envelope", "body": {"base_resp": {"status_code": 1002, "status_msg": "rate limit"}}}),
    "minimax-2045-in-a-503": ("minimax", "/v1/video_generation$", {"kind": "status", "status": 503, "body": {
        "base_resp": {"status_code": 2045, "status_msg": "rate growth limit"}}}),
    "qianfan-429": ("qianfan", "^/v2/model$", {"kind": "status", "status": 429, "query": "Action=Create", "body": {
        "requestId": "r-1", "code": "RequestRateLimitExceeded", "message": "too many requests"}}),
}


@pytest.mark.parametrize("refusal", list(REFUSALS))
async def test_the_providers_own_refusal_is_resent_for_a_create(emu, refusal):
    provider, route, fault = REFUSALS[refusal]
    emu.control.add_fault(route=route, times=2, **fault)
    remote_id = await (video if provider == "minimax" else export)("sync")
    made = emu.control.jobs("minimax") if provider == "minimax" else qianfan_jobs(emu)
    assert [j["job_id"] for j in made] == [remote_id]
    assert len(emu.control.faults()["applied"]) == 2  # two refusals, then the one create that did the work


@pytest.mark.parametrize("status", [200, 503])
def test_flighthub2_rate_limit_code_is_resent_for_a_start(emu, resource_uuid, status):
    emu.control.add_fault(route="reconstruction/start$", kind="envelope", status=status, times=2,
                          body={"code": 210429, "message": "Operations too frequent"})
    started = FlightHub2Hook().start_reconstruction(resource_uuid, {"3d": {}})
    [job] = flighthub2_jobs(emu)
    assert started == {"3d": job["job_id"]} and len(emu.control.requests("reconstruction/start$")) == 3
