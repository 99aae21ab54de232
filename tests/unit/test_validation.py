"""The providers' rules, checked before anything is paid for: each error names the field and the rule."""

from __future__ import annotations

import pytest

from artifact_harvest.core.errors import InvalidParameterError
from artifact_harvest.flighthub2.validation import check_image_count, check_project_uuid
from artifact_harvest.minimax.validation import check_prompt, check_speech, check_video
from artifact_harvest.qianfan.validation import check_model_version_id


@pytest.mark.parametrize(("args", "field", "rule"), [
    (("MiniMax-Hailuo-02", 10, "1080P", None), "duration", "768P 6 or 10 s"),
    (("MiniMax-Hailuo-02", 10, "512P", None), "duration", "512P 6 s"),
    (("MiniMax-Hailuo-2.3", 6, "512P", None), "resolution", "allowed: 768P, 1080P"),
    (("T2V-01", 10, None, None), "duration", "allowed: 6 s"),
    (("T2V-01", 6, "768P", None), "resolution", "leave resolution empty"),
    (("I2V-01", 6, None, None), "first_frame_image", "needs a first frame"),
    (("Sora", 6, None, None), "model", "not a V1 video model"),
])
def test_video_combinations_minimax_refuses(args, field, rule):
    with pytest.raises(InvalidParameterError) as info:
        check_video(*args)
    assert info.value.field == field and rule in str(info.value) and "[minimax]" in str(info.value)


@pytest.mark.parametrize("args", [
    ("MiniMax-Hailuo-02", 10, "768P", None), ("MiniMax-Hailuo-02", 6, "1080P", None),
    ("MiniMax-Hailuo-02", None, None, None), ("T2V-01", 6, None, None), ("I2V-01", None, None, "https://x/y.png"),
])
def test_video_combinations_minimax_accepts(args):
    check_video(*args)


@pytest.mark.parametrize(("prompt", "detail"), [("", "empty"), ("  \n\t ", "whitespace"), ("x" * 2001, "at most 2,000")])
def test_prompt(prompt, detail):
    with pytest.raises(InvalidParameterError, match=detail) as info:
        check_prompt(prompt)
    assert info.value.field == "prompt" and "2013" in str(info.value)
    assert check_prompt(" a kite ") == " a kite "  # sent as given


def test_speech_text_and_voice():
    with pytest.raises(InvalidParameterError, match="text") as info:
        check_speech("   ", "English_Graceful_Lady")
    assert info.value.field == "text"
    with pytest.raises(InvalidParameterError, match="50,000"):
        check_speech("x" * 50_001, "English_Graceful_Lady")
    with pytest.raises(InvalidParameterError) as info:
        check_speech("hello", " ")
    assert info.value.field == "voice_id"
    assert check_speech("hello", "v") == "hello"


@pytest.mark.parametrize(("types", "count", "ok"), [
    (["3d"], 5, True), (["2d", "lidar"], 20_000, True), (["3d"], 4, False), (["2d"], 20_001, False),
    (["3dgs"], 10, True), (["3dgs"], 4_000, True), (["3dgs"], 9, False), (["3d", "3dgs"], 5, False),
    (["3dgs"], 4_001, False),
])
def test_image_count_limits(types, count, ok):
    if ok:
        check_image_count(types, count)
        return
    with pytest.raises(InvalidParameterError) as info:
        check_image_count(types, count)
    assert info.value.field == "photos" and "5 to 20,000" in str(info.value) and "10 to 4,000" in str(info.value)


def test_unknown_model_type():
    with pytest.raises(InvalidParameterError) as info:
        check_image_count(["4d"], 100)
    assert info.value.field == "model_types"


def test_project_uuid_required_names_the_field():
    with pytest.raises(InvalidParameterError) as info:
        check_project_uuid("  ", "flighthub2_default")
    assert info.value.field == "project_uuid" and "Project UUID" in str(info.value)
    assert "flighthub2_default" in str(info.value) and "X-Project-Uuid" in str(info.value)
    assert check_project_uuid(" abc ", "c") == "abc"


@pytest.mark.parametrize("value", ["amv-g73j3faikzpz", " amv-demoseeded01 "])
def test_model_version_id_accepted(value):
    assert check_model_version_id(value) == value.strip()


@pytest.mark.parametrize("value", ["", "am-g73j3faikzpz", "amv-", "amv-ABC", "amve-g73j3faikzpz", None])
def test_model_version_id_refused_with_the_rule(value):
    with pytest.raises(InvalidParameterError) as info:
        check_model_version_id(value)
    assert info.value.field == "model_version_id" and "amv-" in str(info.value) and "version list" in str(info.value)
