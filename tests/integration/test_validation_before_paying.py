"""What the providers refuse is refused before the POST (operators), and the emulator refuses the same with
the provider's code when a request gets through (the hook called directly, as another client would)."""

from __future__ import annotations

from pathlib import Path

import pytest

from artifact_harvest.core.errors import FatalProviderError, InvalidParameterError, ProviderError
from artifact_harvest.flighthub2.hook import FlightHub2Hook
from artifact_harvest.flighthub2.operators import FlightHub2StartReconstructionOperator, FlightHub2UploadPhotosOperator
from artifact_harvest.flighthub2.upload import PhotoUploader, UploadTarget, list_photos
from artifact_harvest.minimax.hook import MiniMaxHook
from artifact_harvest.minimax.operators import MiniMaxCreateSpeechOperator, MiniMaxCreateVideoOperator
from artifact_harvest.qianfan.hook import QianfanHook
from artifact_harvest.qianfan.operators import QianfanCreateModelExportOperator
from tests.support import StateStore

PHOTOS = Path(__file__).resolve().parents[2] / "include" / "sample_data" / "flighthub2_photos"  # five images


def posts(emu) -> list[dict]:
    return [r for r in emu.control.requests() if r["method"] == "POST" and not r["path"].startswith("/_emulator")]


@pytest.mark.parametrize(("options", "field"), [
    ({"prompt": "  \n ", "model": "MiniMax-Hailuo-02"}, "prompt"),
    ({"prompt": "x" * 2001, "model": "MiniMax-Hailuo-02"}, "prompt"),
    ({"prompt": "a kite", "model": "MiniMax-Hailuo-02", "duration": "10", "resolution": "1080P"}, "duration"),
    ({"prompt": "a kite", "model": "I2V-01"}, "first_frame_image"),
])
def test_minimax_video_refused_before_the_post(emu, options, field):
    operator = MiniMaxCreateVideoOperator(task_id="create", **options)
    with pytest.raises(InvalidParameterError) as info:
        operator.execute({"task_state_store": StateStore()})
    assert info.value.field == field
    assert posts(emu) == []


def test_minimax_speech_blank_text_refused_before_the_post(emu):
    with pytest.raises(InvalidParameterError, match="text"):
        MiniMaxCreateSpeechOperator(task_id="create", text=" \t", voice_id="v").execute({"task_state_store": StateStore()})
    assert posts(emu) == []


@pytest.mark.parametrize(("prompt", "options"), [
    ("   ", {}),
    ("x" * 2001, {}),
    ("a kite", {"duration": 10, "resolution": "1080P"}),
    ("a kite", {"duration": 10, "resolution": "512P"}),
])
def test_emulator_refuses_video_like_minimax(emu, prompt, options):
    with pytest.raises(FatalProviderError) as info:
        MiniMaxHook().create_video(prompt, "MiniMax-Hailuo-02", **options)
    assert info.value.code == 2013 and "invalid params" in str(info.value)
    assert emu.control.jobs("minimax") == []


def test_emulator_refuses_blank_speech_like_minimax(emu):
    with pytest.raises(FatalProviderError) as info:
        MiniMaxHook().create_speech("   ", "speech-2.8-hd", "English_Graceful_Lady")
    assert info.value.code == 2013


def _resource(hook: FlightHub2Hook) -> str:
    credential = hook.obtain_upload_credential()
    target = UploadTarget.from_credential(credential)
    etags = PhotoUploader(target, credential, hook.obtain_upload_credential).upload(
        list_photos(str(PHOTOS)), {}, lambda name, etag: None)
    hook.upload_callback(target.resource_uuid, target.callback_param, [{"name": n, "etag": e} for n, e in etags.items()])
    return target.resource_uuid


def test_flighthub2_too_few_images_for_3dgs_refused_before_upload_and_start(emu):
    with pytest.raises(InvalidParameterError, match="10 to 4,000") as info:
        FlightHub2UploadPhotosOperator(task_id="upload", photos=str(PHOTOS), model_types=["3dgs"]).execute(
            {"task_state_store": StateStore()})
    assert info.value.field == "photos" and emu.control.requests() == []

    resource_uuid = _resource(FlightHub2Hook())
    emu.control.clear_requests()
    start = FlightHub2StartReconstructionOperator(task_id="start", resource_uuid=resource_uuid, model_types=["3d", "3dgs"])
    with pytest.raises(InvalidParameterError, match="3dgs"):
        start.execute({"task_state_store": StateStore()})
    assert emu.control.requests("reconstruction/start") == [] and emu.control.jobs("flighthub2") == []


def test_emulator_refuses_too_few_images_like_flighthub2(emu):
    hook = FlightHub2Hook()
    with pytest.raises(ProviderError) as info:
        hook.start_reconstruction(_resource(hook), {"3dgs": {}})
    assert info.value.code == 210400 and "10-4000 images" in str(info.value)
    assert emu.control.jobs("flighthub2") == []


@pytest.mark.parametrize("model_id", ["am-g73j3faikzpz", "amv-Upper", "amv-"])
def test_qianfan_bad_version_id_refused_before_any_call(emu, model_id):
    with pytest.raises(InvalidParameterError, match="amv-") as info:
        QianfanCreateModelExportOperator(task_id="export", model_id=model_id).execute({"task_state_store": StateStore()})
    assert info.value.field == "model_version_id" and emu.control.requests("/v2/model") == []


def test_emulator_refuses_bad_version_id_like_qianfan(emu):
    with pytest.raises(FatalProviderError) as info:
        QianfanHook().create_export("amv-Upper")
    assert (info.value.code, info.value.http_status) == ("InvalidRequestArgumentError", 400)
