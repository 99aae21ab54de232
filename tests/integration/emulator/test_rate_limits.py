"""The emulator's per-account rate limits: each provider's own refusal past the rate, and the counts tests read."""

from __future__ import annotations

import requests

from harvest_emulator.credentials import (
    FLIGHTHUB2_PROJECT_UUID,
    FLIGHTHUB2_TOKEN,
    MINIMAX_API_KEY,
    QIANFAN_AK,
)


def burst(url: str, n: int, headers: dict, method: str = "GET", **kwargs) -> list[requests.Response]:
    """``n`` requests as fast as one keep-alive session sends them."""
    with requests.Session() as session:
        return [session.request(method, url, headers=headers, timeout=10, **kwargs) for _ in range(n)]


def only_account(emu, provider: str) -> dict:
    [(key, counts)] = [(k, v) for k, v in emu.control.rates()["accounts"].items() if k.startswith(provider)]
    return counts


def test_minimax_past_the_rate_answers_1002_with_http_200(emu):
    emu.control.configure(rate_limits={"minimax": {"rps": 5}})
    answers = burst(f"{emu.url}/v1/query/t2a_async_query_v2?task_id=1", 12,
                    {"Authorization": f"Bearer {MINIMAX_API_KEY}"})
    refused = [a for a in answers if a.json().get("base_resp", {}).get("status_code") == 1002]
    assert refused and all(a.status_code == 200 for a in refused)
    counts = only_account(emu, "minimax")
    assert counts["refused"] == len(refused) and counts["accepted"] == 12 - len(refused)
    assert counts["routes"]["/v1/query/t2a_async_query_v2"] == {"accepted": counts["accepted"],
                                                                 "refused": counts["refused"]}
    # every request counted in its second; what was accepted never passes the rate in any second
    assert sum(counts["per_second"].values()) == 12
    assert counts["accepted"] <= 5 * len(counts["per_second"])
    assert MINIMAX_API_KEY not in str(emu.control.rates())
    # the request log marks each refusal itself (its HTTP status, 200, cannot)
    logged = emu.control.requests("/v1/query/t2a_async_query_v2")
    assert sum(bool(r.get("refused")) for r in logged) == len(refused) and len(logged) == 12


def test_flighthub2_past_the_rate_answers_210429(emu):
    emu.control.configure(rate_limits={"flighthub2": {"rps": 3}})
    headers = {"X-User-Token": FLIGHTHUB2_TOKEN, "X-Project-Uuid": FLIGHTHUB2_PROJECT_UUID}
    answers = burst(f"{emu.url}/openapi/v0.1/project", 8, headers)
    codes = [a.json()["code"] for a in answers]
    assert 210429 in codes and codes.count(0) >= 3
    refused = answers[codes.index(210429)]
    assert refused.status_code == 200 and refused.json()["message"] == "Operations too frequent"


def test_qianfan_past_the_rate_answers_http_429_with_its_error_body(emu):
    emu.control.configure(rate_limits={"qianfan": {"rps": 2}})
    headers = {"Authorization": f"bce-auth-v1/{QIANFAN_AK}/2026-01-01T00:00:00Z/300//{'0' * 64}"}
    answers = burst(f"{emu.url}/v2/model?Action=DescribeModelExportTask", 6, headers, "POST", json={})
    refused = [a for a in answers if a.status_code == 429]
    assert refused, [a.status_code for a in answers]
    body = refused[0].json()
    assert body["code"] == "RequestRateLimitExceeded" and body["requestId"] and body["message"]


def test_a_route_rule_limits_only_its_route_and_accounts_are_separate(emu):
    emu.control.configure(rate_limits={"minimax": [{"rpm": 2, "route": "/v1/video_generation$"}]})
    auth = {"Authorization": f"Bearer {MINIMAX_API_KEY}"}
    creates = burst(f"{emu.url}/v1/video_generation", 3, auth, "POST", json={"model": "T2V-01", "prompt": "p"})
    assert [a.json()["base_resp"]["status_code"] for a in creates][-1] == 1002
    queries = burst(f"{emu.url}/v1/query/video_generation?task_id=1", 5, auth)
    assert all(a.json()["base_resp"]["status_code"] != 1002 for a in queries)
    other = burst(f"{emu.url}/v1/video_generation", 1, {"Authorization": "Bearer sk-api-another-account-key"},
                  "POST", json={"model": "T2V-01", "prompt": "p"})
    assert other[0].json()["base_resp"]["status_code"] != 1002  # another account: its own window (1004 here)
    assert len(emu.control.rates()["accounts"]) == 2


def test_connections_are_counted_per_client_connection(emu):
    auth = {"Authorization": f"Bearer {MINIMAX_API_KEY}"}
    burst(f"{emu.url}/v1/query/video_generation?task_id=1", 5, auth)  # one keep-alive session
    for _ in range(3):
        requests.get(f"{emu.url}/v1/query/video_generation?task_id=1", headers={**auth, "Connection": "close"},
                     timeout=10)
    assert only_account(emu, "minimax")["connections"] == 4
    emu.control.clear_rates()
    assert emu.control.rates() == {"accounts": {}, "connections": 0}
