"""The key lock and the sidecar on a real filesystem (flock conflicts between open file descriptions, so one
process can play both runs)."""

from __future__ import annotations

import threading

import pytest

from artifact_harvest.core.errors import FatalProviderError
from artifact_harvest.core.staging import KeyLocked, Sidecar, key_lock


def test_a_second_holder_waits_bounded_then_fails_retryably(tmp_path, caplog):
    with key_lock(tmp_path, label="[t] k"):
        with pytest.raises(KeyLocked, match="another run has held the staging lock .* for more than 0s") as info:
            with key_lock(tmp_path, label="[t] k", timeout=0.3, poll=0.05):
                pass
    assert not isinstance(info.value, FatalProviderError)
    assert "waiting for its lock" in caplog.text


def test_the_lock_passes_to_the_waiter_when_released(tmp_path):
    order: list[str] = []
    held, release = threading.Event(), threading.Event()

    def first() -> None:
        with key_lock(tmp_path, label="first"):
            held.set()
            release.wait(10)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(10)
    release.set()
    with key_lock(tmp_path, label="second", timeout=10, poll=0.01):
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]


def test_sidecar_round_trip_and_torn_file(tmp_path):
    final = tmp_path / "model.bin"
    Sidecar('"abc"', 123, sha256="f" * 64).save(final)
    assert Sidecar.load(final) == Sidecar('"abc"', 123, sha256="f" * 64)
    Sidecar.path_for(final).write_text('{"validator": "ab')  # torn write
    assert Sidecar.load(final) is None
    Sidecar.remove(final)
    assert Sidecar.load(final) is None and list(tmp_path.iterdir()) == []
