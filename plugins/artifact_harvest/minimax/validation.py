"""What MiniMax refuses (``base_resp.status_code`` 2013, invalid params), checked before the POST.

A refused create costs nothing but a failed run; checking here gives the user MiniMax's own rule before any
request is sent. The DAGs' Param schemas carry the parts JSON Schema can say (lengths, blank text, enums);
the model/duration/resolution combinations span three fields, so only this module (and the Param
descriptions) can enforce them.
"""

from __future__ import annotations

from artifact_harvest.core.errors import InvalidParameterError
from artifact_harvest.minimax.status import PROVIDER

#: MiniMax's video prompt limit (characters)
PROMPT_MAX_CHARS = 2000
#: t2a_async_v2 ``text`` limit (characters); longer texts go through ``text_file_id``
TEXT_MAX_CHARS = 50_000

#: model → {resolution: allowed durations}; ``None`` = resolution not sent (the model's default)
VIDEO_COMBINATIONS: dict[str, dict[str | None, tuple[int, ...]]] = {
    "MiniMax-Hailuo-2.3": {None: (6, 10), "768P": (6, 10), "1080P": (6,)},
    "MiniMax-Hailuo-2.3-Fast": {None: (6, 10), "768P": (6, 10), "1080P": (6,)},
    "MiniMax-Hailuo-02": {None: (6, 10), "512P": (6,), "768P": (6, 10), "1080P": (6,)},
    **{model: {None: (6,)} for model in ("T2V-01", "T2V-01-Director", "I2V-01", "I2V-01-Director", "I2V-01-live",
                                          "S2V-01")},
}
#: image-to-video models: no video without a first frame
NEEDS_FIRST_FRAME = frozenset({"MiniMax-Hailuo-2.3-Fast", "I2V-01", "I2V-01-Director", "I2V-01-live"})

VIDEO_RULE = (
    "MiniMax video rules: Hailuo-2.3 / 2.3-Fast: 768P 6 or 10 s, 1080P 6 s; Hailuo-02: 512P 6 s, 768P 6 or 10 s, "
    "1080P 6 s; T2V-01, I2V-01 and S2V-01 families: 6 s at their fixed resolution (leave resolution empty); "
    "2.3-Fast and I2V-01 models need a first frame image"
)


def _text(value: object, field: str, limit: int) -> str:
    text = "" if value is None else str(value)
    if not text.strip():
        raise InvalidParameterError(PROVIDER, field, "is empty or only whitespace; MiniMax answers 2013 invalid params")
    if len(text) > limit:
        raise InvalidParameterError(
            PROVIDER, field, f"has {len(text):,} characters; MiniMax accepts at most {limit:,} (2013 invalid params)"
        )
    return text


def check_prompt(prompt: object) -> str:
    return _text(prompt, "prompt", PROMPT_MAX_CHARS)


def check_video(model: str, duration: int | None, resolution: str | None, first_frame_image: str | None) -> None:
    """Raise ``InvalidParameterError`` naming the field and MiniMax's rule if MiniMax would refuse this video."""
    rules = VIDEO_COMBINATIONS.get(model)
    if rules is None:
        raise InvalidParameterError(PROVIDER, "model", f"{model!r} is not a V1 video model: one of "
                                    f"{', '.join(VIDEO_COMBINATIONS)}")
    if resolution not in rules:
        allowed = ", ".join(r for r in rules if r) or "none (leave it empty)"
        raise InvalidParameterError(PROVIDER, "resolution", f"{resolution} is not offered by {model} "
                                    f"(allowed: {allowed}). {VIDEO_RULE}")
    if duration is not None and duration not in rules[resolution]:
        at = f" at {resolution}" if resolution else ""
        raise InvalidParameterError(PROVIDER, "duration", f"{duration} s is not offered by {model}{at} (allowed: "
                                    f"{' or '.join(map(str, rules[resolution]))} s). {VIDEO_RULE}")
    if model in NEEDS_FIRST_FRAME and not first_frame_image:
        raise InvalidParameterError(PROVIDER, "first_frame_image", f"{model} is an image-to-video model and needs a "
                                    "first frame image (URL or data: URL)")


def check_speech(text: object, voice_id: object) -> str:
    if not str(voice_id or "").strip():
        raise InvalidParameterError(PROVIDER, "voice_id", "is empty; give a system or cloned voice id")
    return _text(text, "text", TEXT_MAX_CHARS)
