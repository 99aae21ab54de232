"""No paid work without input: each on-demand DAG triggered with no conf creates no run, or a run that sends
no POST to the emulator (nothing submitted, uploaded or started)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from airflow.sdk.exceptions import ParamValidationError

from tests.support import load_dag

#: the on-demand pipelines (schedule=None); what each one requires
ON_DEMAND = {
    "minimax_generate_video": "prompt",
    "minimax_generate_speech": "text",
    "minimax_archive_file": "file_id",
    "qianfan_export_model": "model_version_id",
    "flighthub2_reconstruct_model": None,  # photos or resource_uuid: checked by the first task, before any call
    "flighthub2_download_model": None,  # model_uuid or file_id: checked by the first task
}


@pytest.fixture
def sandbox(airflow_db, emu, archive_root, staging_dir):
    return emu


def provider_calls(emu) -> list[dict]:
    """Every request the emulator logged outside its own control API."""
    return [r for r in emu.control.requests() if not r["path"].startswith("/_emulator")]


@pytest.mark.parametrize("dag_id", sorted(ON_DEMAND))
def test_blank_trigger_pays_for_nothing(sandbox, dag_id):
    dag = load_dag(dag_id)
    assert dag.schedule is None
    required = ON_DEMAND[dag_id]
    if required:
        assert not dag.params.get_param(required).has_value  # no demo value waits in the form
        with pytest.raises(ParamValidationError, match=required):
            dag.test()
    else:
        assert dag.test().state == "failed"
    assert [c for c in provider_calls(sandbox) if c["method"] == "POST"] == []
    assert provider_calls(sandbox) == []  # not even a lookup: the inputs are checked first


def test_blank_cli_trigger_is_refused(sandbox):
    """``airflow dags test`` (what a user types first) with no conf: refused, naming the missing field."""
    done = subprocess.run([sys.executable, "-m", "airflow", "dags", "test", "minimax_generate_video"],
                          capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert done.returncode != 0
    assert "prompt" in done.stderr + done.stdout and "ParamValidationError" in done.stderr + done.stdout
    assert provider_calls(sandbox) == []
