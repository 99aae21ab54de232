"""Speech bundles are listed in place: members with sizes and digests, hostile names flagged, never extracted."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile

from artifact_harvest.minimax.operators import bundle_members
from harvest_emulator.minimax import speech_bundle


def test_emulated_speech_bundle_has_the_three_documented_members(tmp_path):
    path = tmp_path / "b.tar"
    path.write_bytes(speech_bundle("77", "mp3", 100))
    members = bundle_members(path)
    assert sorted(m["kind"] for m in members) == ["audio", "extra", "subtitles"]
    audio = next(m for m in members if m["kind"] == "audio")
    assert audio["name"] == "77.mp3" and audio["size"] == 100


def test_traversal_names_are_flagged_and_nothing_is_written(tmp_path):
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in {"../../escape.mp3": b"x" * 5, "/abs/extra.json": b"{}"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    members = bundle_members(path)
    assert all(m["unsafe_name"] for m in members)
    assert members[0]["sha256"] == hashlib.sha256(b"x" * 5).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar"]
    assert not (tmp_path.parent.parent / "escape.mp3").exists()


def test_zip_bundles_and_plain_files(tmp_path):
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("out/a.wav", b"abc")
        archive.writestr("out/a.titles", b"[]")
    listed = [(m["name"], m["kind"]) for m in bundle_members(path)]
    assert listed == [("out/a.wav", "audio"), ("out/a.titles", "subtitles")]
    plain = tmp_path / "v.mp4"
    plain.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(600))
    assert bundle_members(plain) is None
