"""The MiniMax emulator routes themselves: auth answers, prefixes, URL lifetimes, ids' types."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from harvest_emulator.credentials import MINIMAX_API_KEY
from harvest_emulator.minimax import SEED_SPEECH_FILE_ID, SEED_VIDEO_FILE_ID

AUTH = {"Authorization": f"Bearer {MINIMAX_API_KEY}"}


def get(emu, path: str, headers=AUTH, **params) -> dict:
    response = requests.get(emu.url + path, headers=headers, params=params, timeout=10)
    assert response.status_code == 200  # MiniMax answers errors with HTTP 200 too
    return response.json()


def test_missing_key_is_1004_with_the_real_message(emu):
    answer = get(emu, "/v1/files/list", headers={}, purpose="video_generation")
    assert answer["base_resp"]["status_code"] == 1004
    assert "Please carry the API secret key in the 'Authorization' field" in answer["base_resp"]["status_msg"]


@pytest.mark.parametrize("prefix", ["", "/minimax"])
def test_both_prefixes_and_group_id_ignored(emu, prefix):
    answer = get(emu, f"{prefix}/v1/files/retrieve", file_id=str(SEED_VIDEO_FILE_ID), GroupId="123")
    assert answer["base_resp"] == {"status_code": 0, "status_msg": "success"}
    assert answer["file"]["file_id"] == SEED_VIDEO_FILE_ID


def test_url_lifetimes_video_one_hour_speech_nine(emu):
    def ttl(file_id: int) -> float:
        url = get(emu, "/v1/files/retrieve", file_id=file_id)["file"]["download_url"]
        return int(parse_qs(urlsplit(url).query)["Expires"][0]) - time.time()

    assert 3590 < ttl(SEED_VIDEO_FILE_ID) <= 3600
    assert 32390 < ttl(SEED_SPEECH_FILE_ID) <= 32400


def test_tiny_ttl_makes_urls_expire(emu):
    emu.control.configure(url_ttl_seconds=0)
    url = get(emu, "/v1/files/retrieve", file_id=SEED_VIDEO_FILE_ID)["file"]["download_url"]
    deadline = time.monotonic() + 5
    while (response := requests.get(url, timeout=10)).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert response.status_code == 403 and "expired" in response.text
