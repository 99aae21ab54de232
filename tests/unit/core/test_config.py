"""core.config.setting: Airflow's [artifact_harvest] section through its real configuration (env variables)."""

from __future__ import annotations

import pytest

from artifact_harvest.core.config import setting
from artifact_harvest.core.transfer import TransferSettings


def test_unset_key_gives_the_default(monkeypatch):
    monkeypatch.delenv("AIRFLOW__ARTIFACT_HARVEST__NO_SUCH_KEY", raising=False)
    assert setting("no_such_key", 7.5) == 7.5


def test_value_converted_with_its_type(monkeypatch):
    monkeypatch.setenv("AIRFLOW__ARTIFACT_HARVEST__DOWNLOAD_PIECE_SIZE", "4194304.0")
    assert setting("download_piece_size", 1, int) == 4 << 20
    assert TransferSettings.from_config().piece_size == 4 << 20
    assert TransferSettings.from_config(piece_size=1 << 20).piece_size == 1 << 20  # a call's value wins


def test_bad_value_names_the_key(monkeypatch):
    monkeypatch.setenv("AIRFLOW__ARTIFACT_HARVEST__PROGRESS_INTERVAL", "often")
    with pytest.raises(ValueError, match=r"\[artifact_harvest\] progress_interval = 'often'"):
        setting("progress_interval", 30.0)


@pytest.mark.parametrize(("raw", "expected"), [("false", False), ("Off", False), ("0", False), ("yes", True)])
def test_drop_written_pages_is_a_boolean(monkeypatch, raw, expected):
    assert TransferSettings.from_config().drop_written_pages is True  # the default
    monkeypatch.setenv("AIRFLOW__ARTIFACT_HARVEST__DROP_WRITTEN_PAGES", raw)
    assert TransferSettings.from_config().drop_written_pages is expected


def test_drop_written_pages_that_is_no_boolean_names_the_key(monkeypatch):
    monkeypatch.setenv("AIRFLOW__ARTIFACT_HARVEST__DROP_WRITTEN_PAGES", "sometimes")
    with pytest.raises(ValueError, match=r"drop_written_pages = 'sometimes' is not a valid boolean"):
        TransferSettings.from_config()
