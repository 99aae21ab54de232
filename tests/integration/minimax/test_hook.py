"""MiniMaxHook against the emulator over real HTTP: every endpoint, envelope faults, auth, prefix, GroupId."""

from __future__ import annotations

import json

import pytest

from artifact_harvest.core.errors import FatalProviderError, QuotaExhausted, TransientProviderError
from artifact_harvest.minimax.hook import MiniMaxHook
from harvest_emulator.credentials import MINIMAX_API_KEY


def _conn(monkeypatch, conn_id: str, url: str, **fields) -> str:
    extra = {k: v for k, v in fields.items() if k != "password"}
    conn = {"conn_type": "minimax", "host": url, "password": fields.get("password", MINIMAX_API_KEY), "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def _finish_video(hook: MiniMaxHook, task_id: str) -> dict:
    for _ in range(10):
        answer = hook.query_video(task_id)
        if answer["status"] == "Success":
            return answer
    raise AssertionError(f"video never finished: {answer}")


def test_video_flow_create_query_retrieve(emu):
    hook = MiniMaxHook()
    task_id = hook.create_video("a cat", "MiniMax-Hailuo-02", duration=6, resolution="768P")
    answer = _finish_video(hook, task_id)
    assert isinstance(answer["file_id"], str)  # the documented string form
    file = hook.retrieve_file(answer["file_id"])
    assert file.file_id == int(answer["file_id"])
    assert file.purpose == "video_generation" and file.bytes > 0
    body = emu.control.requests("/v1/video_generation")[0]["headers"]
    assert body["Authorization"] == f"Bearer {MINIMAX_API_KEY}"
    assert "GroupId" not in emu.control.requests("/v1/video_generation")[0]["query"]


def test_speech_flow_returns_integer_ids(emu):
    hook = MiniMaxHook()
    task_id = hook.create_speech("hello", "speech-2.8-hd", "English_Graceful_Lady", audio_format="mp3")
    answers = [hook.query_speech(task_id) for _ in range(3)]
    assert answers[0]["status"] == "processing"
    assert answers[-1]["status"] == "success" and isinstance(answers[-1]["file_id"], int)
    assert hook.retrieve_file(answers[-1]["file_id"]).purpose == "t2a_async"


async def test_async_twins(emu):
    hook = MiniMaxHook()
    task_id = await hook.acreate_video("a dog", "MiniMax-Hailuo-02")
    assert (await hook.aquery_video(task_id))["status"] == "Preparing"
    files = await hook.alist_files("video_generation")
    file = await hook.aretrieve_file(files[0].file_id)
    assert file.download_url.startswith(emu.url)


def test_list_and_delete_files(emu):
    hook = MiniMaxHook()
    seeded = hook.list_files("t2a_async")
    assert seeded and all(f.purpose == "t2a_async" and not f.download_url for f in seeded)
    hook.delete_file(seeded[0].file_id, "t2a_async")
    assert seeded[0].file_id not in {f.file_id for f in hook.list_files("t2a_async")}
    with pytest.raises(FatalProviderError) as info:
        hook.retrieve_file(seeded[0].file_id)
    assert info.value.code == 2013


@pytest.mark.parametrize("code", [1002, 1039, 2045, 1000, 1001, 1013, 1024, 1033])
def test_rate_limit_and_transient_codes_are_retried(emu, code):
    hook = MiniMaxHook()
    task_id = hook.create_video("x", "T2V-01")
    emu.control.add_fault(route="/v1/query/video_generation", kind="envelope",
                          body={"base_resp": {"status_code": code, "status_msg": "try later"}}, times=2)
    assert hook.query_video(task_id)["status"] == "Preparing"
    calls = emu.control.requests("/v1/query/video_generation")
    assert len(calls) == 3


def test_persistent_rate_limit_gives_up_as_transient(emu):
    emu.control.add_fault(route="/v1/files/list", kind="envelope",
                          body={"base_resp": {"status_code": 1002, "status_msg": "rate limit"}}, times=-1)
    with pytest.raises(TransientProviderError) as info:
        MiniMaxHook().list_files("video_generation")
    assert info.value.code == 1002


@pytest.mark.parametrize(("code", "error"), [(1004, FatalProviderError), (2049, FatalProviderError),
                                           (1026, FatalProviderError), (1027, FatalProviderError),
                                           (2013, FatalProviderError), (1008, QuotaExhausted),
                                           (2056, QuotaExhausted)])
def test_terminal_codes_are_not_resent(emu, code, error):
    emu.control.push_scenario("minimax", error_code=code)
    with pytest.raises(error) as info:
        MiniMaxHook().create_video("x", "T2V-01")
    assert info.value.code == code
    assert len(emu.control.requests("/v1/video_generation")) == 1


def test_wrong_key_is_1004_and_never_leaks(emu, monkeypatch):
    conn_id = _conn(monkeypatch, "minimax_wrong", emu.url, password="sk-api-WrongKeyValue123456")
    with pytest.raises(FatalProviderError) as info:
        MiniMaxHook(conn_id).list_files("video_generation")
    assert info.value.code == 1004 and "token not match group" in str(info.value)
    assert "WrongKeyValue" not in str(info.value)


def test_path_prefix_and_group_id(emu, monkeypatch):
    conn_id = _conn(monkeypatch, "minimax_gateway", emu.url, path_prefix="/minimax", group_id="1899")
    files = MiniMaxHook(conn_id).list_files("video_generation")
    assert files
    [call] = emu.control.requests("/files/list")
    assert call["path"] == "/minimax/v1/files/list"
    assert call["query"] == {"purpose": "video_generation", "GroupId": "1899"}


def test_invalid_model_is_rejected_as_invalid_params(emu):
    with pytest.raises(FatalProviderError) as info:
        MiniMaxHook().create_video("x", "no-such-model")
    assert info.value.code == 2013 and "no-such-model" in str(info.value)
