"""What a MiniMax video or speech run will send and use, for its approval step (core.approval)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from artifact_harvest.core.approval import Summary, quote
from artifact_harvest.core.redact import redact_url
from artifact_harvest.minimax.validation import check_prompt, check_speech, check_video


def video_summary(params: Mapping[str, Any]) -> Summary:
    """Model, duration, resolution, prompt length and first frame; uses the video's seconds. Checks MiniMax's
    rules first (``InvalidParameterError``), so nobody approves a request MiniMax would refuse."""
    prompt = check_prompt(params.get("prompt"))
    model = str(params.get("model"))
    resolution, frame = params.get("resolution") or None, params.get("first_frame_image") or None
    duration = int(params["duration"]) if params.get("duration") else None
    check_video(model, duration, resolution, frame)
    seconds = f"{duration} seconds" if duration else "the model's default length"
    if frame is None:
        first_frame = "none (text → video)"
    elif str(frame).startswith("data:"):
        first_frame = f"an inline data: URL ({len(str(frame)):,} characters)"
    else:
        first_frame = f"the image at {quote(redact_url(str(frame)))}"  # a signed query stays out
    sent = [
        f"Model: {model}",
        f"Duration: {seconds}",
        f"Resolution: {resolution or 'the model default'}",
        f"Prompt: {len(prompt):,} characters: {quote(prompt)}",
        f"First frame image: {first_frame}",
        "Request: one POST /v1/video_generation",
    ]
    return Summary(sent=sent, uses=[f"MiniMax video: {seconds} (one video, {model}, "
                                    f"{resolution or 'default resolution'})"])


def speech_summary(params: Mapping[str, Any]) -> Summary:
    """Model, voice, format and text length; uses the text's characters. Checks MiniMax's rules first."""
    text = check_speech(params.get("text"), params.get("voice_id"))
    sent = [
        f"Model: {params.get('model')}",
        f"Voice: {quote(params.get('voice_id'))}",
        f"Audio format: {params.get('format')}",
        f"Text: {len(text):,} characters: {quote(text)}",
        "Request: one POST /v1/t2a_async_v2",
    ]
    return Summary(sent=sent, uses=[f"MiniMax speech: {len(text):,} characters ({params.get('model')})"])
