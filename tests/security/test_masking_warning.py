"""FlightHub 2 task logs no longer say "Skipping masking for a secret as it's too short (<5 chars)".

Cause: Airflow's ``Connection.extra_dejson`` hands every extra value to the log masker, which checks the
length before it checks whether the key names a secret; the connection's ``language`` ("en"/"zh") tripped
the warning. The hooks read extra without registering its (non-secret) values; the key stays masked.
"""

from __future__ import annotations

import pytest

from artifact_harvest.flighthub2.hook import FlightHub2Hook
from harvest_emulator.credentials import FLIGHTHUB2_TOKEN
from harvest_emulator.flighthub2 import DEMO_FILE_ID
from tests.support import load_dag, task_states

WARNING = "too short"


@pytest.fixture
def fresh_warning():
    """The masker warns once per process: re-arm it so this test sees a warning if one is due."""
    from airflow.sdk._shared.secrets_masker.secrets_masker import SecretsMasker

    SecretsMasker._has_warned_short_secret = False
    yield
    SecretsMasker._has_warned_short_secret = False


def test_no_short_secret_warning_in_a_flighthub2_run(airflow_db, emu, archive_root, staging_dir, fresh_warning, capfd,
                                                      caplog):
    run = load_dag("flighthub2_download_model").test(run_conf={"file_id": DEMO_FILE_ID, "poll_interval": 0.05,
                                                               "timeout": "PT30S"})
    assert run.state == "success", task_states(run)
    out = "".join(capfd.readouterr()) + caplog.text
    assert "download_and_archive" in out  # the task logs were captured
    assert WARNING not in out
    assert FLIGHTHUB2_TOKEN not in out


def test_hook_masks_the_key_but_registers_no_extra_value(emu, fresh_warning, caplog):
    from airflow.sdk._shared.secrets_masker.secrets_masker import _secrets_masker

    hook = FlightHub2Hook()
    hook.projects()
    assert WARNING not in caplog.text
    masker = _secrets_masker()
    assert masker.redact(f"token {FLIGHTHUB2_TOKEN}") == "token ***"
    assert "en" not in {p.replace("\\", "") for p in masker.patterns}
