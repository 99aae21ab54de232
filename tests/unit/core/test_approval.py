"""The approval step's parts without a scheduler: the review text, the summaries, skipping when not required."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowSkipException

from artifact_harvest.core.approval import PaidWorkApprovalOperator, Summary, approval_body, approve_before, quote
from artifact_harvest.core.errors import InvalidParameterError
from artifact_harvest.minimax.approval import speech_summary, video_summary
from artifact_harvest.qianfan.approval import export_summary

VIDEO = {"prompt": "a red kite", "model": "MiniMax-Hailuo-02", "duration": 10, "resolution": "768P",
         "first_frame_image": None}


def test_body_lists_what_is_sent_and_used():
    body = approval_body(Summary(sent=["Model: X", "Prompt: 3 characters"], uses=["MiniMax video: 6 seconds"]))
    assert "**What will be sent**\n\n- Model: X\n- Prompt: 3 characters\n\n**What it uses**\n\n- MiniMax video" in body
    assert "**Reject** sends nothing" in body


def test_quote_is_one_escaped_line():
    assert quote("a *bold*\n[link](http://x) `code`") == r"a \*bold\* \[link\]\(http://x\) \`code\`"
    assert quote("x" * 500, limit=10) == "x" * 9 + "…"


def test_video_summary():
    summary = video_summary(VIDEO)
    assert summary.sent[:4] == ["Model: MiniMax-Hailuo-02", "Duration: 10 seconds", "Resolution: 768P",
                                "Prompt: 10 characters: a red kite"]
    assert summary.uses == ["MiniMax video: 10 seconds (one video, MiniMax-Hailuo-02, 768P)"]


def test_video_summary_keeps_a_signed_query_out():
    frame = "https://bucket.example/frame.png?X-Amz-Signature=abc123secret"
    summary = video_summary({**VIDEO, "model": "I2V-01", "duration": 6, "resolution": None, "first_frame_image": frame})
    assert "abc123secret" not in " ".join(summary.sent) and "frame\\.png" in summary.sent[4]


def test_video_summary_refuses_what_minimax_would():
    with pytest.raises(InvalidParameterError, match="duration"):
        video_summary({**VIDEO, "resolution": "1080P"})  # 1080P is 6 s only
    with pytest.raises(InvalidParameterError, match="first_frame_image"):
        video_summary({**VIDEO, "model": "I2V-01", "duration": 6, "resolution": None})


def test_speech_summary_counts_characters():
    summary = speech_summary({"text": "hello " * 100, "model": "speech-2.8-hd", "voice_id": "v", "format": "mp3"})
    assert summary.uses == ["MiniMax speech: 600 characters (speech-2.8-hd)"]
    assert "Text: 600 characters" in summary.sent[3]


def test_export_summary():
    summary = export_summary({"model_version_id": "amv-abc1", "force_new_export": True})
    assert summary.sent[:2] == ["Model version: amv-abc1", "Force a new export: yes"]
    with pytest.raises(InvalidParameterError):
        export_summary({"model_version_id": "am-abc1"})


def _dag() -> DAG:
    return DAG("approval_unit", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc))


def test_not_required_skips_without_asking():
    calls = []
    with _dag():
        approve = PaidWorkApprovalOperator(task_id="approve", subject="s", required="False",
                                           summarize=lambda params: calls.append(params) or Summary([], []))
    with pytest.raises(AirflowSkipException):
        approve.execute({"params": {}})
    assert calls == []  # no summary (no provider call) when nobody is asked


def test_approve_before_only_before_the_first_task():
    from airflow.providers.standard.operators.empty import EmptyOperator

    with _dag():
        first, second = EmptyOperator(task_id="first"), EmptyOperator(task_id="second")
        first >> second
        with pytest.raises(ValueError, match="upstream"):
            approve_before(second, lambda params: Summary([], []), "s")
        approve = approve_before(first, lambda params: Summary([], []), "s")
    assert approve.downstream_task_ids == {"first"} and first.trigger_rule == "none_failed"
