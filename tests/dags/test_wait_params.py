"""Every wait takes the shared waiting Params, and a wait's timeout takes what people type: an ISO 8601 duration
(the form's duration box) or a number of seconds (a run's conf, the REST API); anything else is refused when the
run is triggered, naming the field."""

from __future__ import annotations

import copy

import pytest
from airflow.sdk.exceptions import ParamValidationError

from artifact_harvest.core.dag_defaults import WAIT_ARGS
from artifact_harvest.core.sensors import PollingSensor
from harvest_emulator.minimax import SEED_VIDEO_FILE_ID
from tests.support import DAGS, load_dag, task_states

#: every pipeline except the MiniMax sweep (it lists and downloads, it waits for nothing)
WAITING = sorted(p.stem for p in DAGS.glob("*.py") if p.stem != "minimax_archive_new_files")
FOUR_MINUTES = [240, 240.0, "PT4M"]


def sensors(dag) -> list:
    """The DAG's waits: plain and mapped ``PollingSensor`` tasks."""
    return [t for t in dag.tasks if issubclass(getattr(t, "operator_class", type(t)), PollingSensor)]


def argument(task, name: str):
    """A task's constructor argument, plain or given to ``.partial()``."""
    return task.partial_kwargs[name] if hasattr(task, "partial_kwargs") else getattr(task, name)


def resolved(dag, conf: dict) -> dict:
    """The ``conf`` values, each checked against its Param as a trigger checks them (form, conf, REST API)."""
    params = copy.deepcopy(dag.params)
    for key, value in conf.items():
        params[key] = value  # ParamsDict validates on assignment
    return {key: params[key] for key in conf}


@pytest.mark.parametrize("dag_id", WAITING)
def test_every_wait_takes_the_shared_waiting_params(dag_id):
    dag = load_dag(dag_id)
    assert sensors(dag), f"{dag_id} waits for nothing"
    for task in sensors(dag):
        assert {name: argument(task, name) for name in WAIT_ARGS} == WAIT_ARGS, task.task_id
    assert dag.params.get_param("timeout").schema["format"] == "duration"  # the form's duration box


@pytest.mark.parametrize("timeout", FOUR_MINUTES, ids=repr)
@pytest.mark.parametrize("dag_id", WAITING)
def test_the_sensors_get_the_timeout_in_seconds(dag_id, timeout):
    dag = load_dag(dag_id)
    params = resolved(dag, {"timeout": timeout, "poll_interval": 0.5})
    env = dag.get_template_env()
    for task in sensors(dag):
        rendered = {name: env.from_string(argument(task, name)).render(params=params) for name in WAIT_ARGS}
        if hasattr(task, "partial_kwargs"):  # a mapped sensor is unmapped at run time: check the values
            assert float(rendered["wait_timeout"]) == 240 and float(rendered["poll_interval"]) == 0.5
            continue
        sensor = copy.copy(task)
        sensor.poll_interval, sensor.wait_timeout = rendered["poll_interval"], rendered["wait_timeout"]
        sensor._apply_templated_timing()
        assert (sensor.timeout, sensor.poke_interval) == (240, 0.5), task.task_id


@pytest.mark.parametrize("bad", ["banana", "", 0, -5, True, "PT4 minutes"], ids=repr)
@pytest.mark.parametrize("dag_id", WAITING)
def test_a_timeout_that_is_not_a_duration_is_refused_naming_the_field(dag_id, bad):
    dag = load_dag(dag_id)
    with pytest.raises(ParamValidationError, match="Invalid input for param timeout: "):
        resolved(dag, {"timeout": bad})


@pytest.fixture
def sandbox(airflow_db, emu, archive_root, staging_dir):
    return emu


@pytest.fixture
def sensor_timeouts(monkeypatch) -> dict[str, float]:
    """``{task_id: timeout}`` each sensor ran with (dag.test runs tasks in this process)."""
    seen: dict[str, float] = {}
    apply = PollingSensor._apply_templated_timing

    def recording(self) -> None:
        apply(self)
        seen[self.task_id] = self.timeout

    monkeypatch.setattr(PollingSensor, "_apply_templated_timing", recording)
    return seen


@pytest.mark.parametrize("timeout", [240, "PT4M"], ids=repr)
def test_a_run_triggered_with_the_timeout_as_seconds_or_duration(sandbox, sensor_timeouts, archive_root, timeout):
    run = load_dag("minimax_archive_file").test(
        run_conf={"file_id": SEED_VIDEO_FILE_ID, "poll_interval": 0.05, "timeout": timeout})
    assert run.state == "success", task_states(run)
    assert sensor_timeouts == {"retrieve": 240}


def test_a_run_triggered_with_a_banana_timeout_is_refused(sandbox, sensor_timeouts):
    with pytest.raises(ParamValidationError, match="Invalid input for param timeout: 'banana' is not a 'duration'"):
        load_dag("minimax_archive_file").test(run_conf={"file_id": SEED_VIDEO_FILE_ID, "timeout": "banana"})
    assert sensor_timeouts == {}
    assert [r for r in sandbox.control.requests() if not r["path"].startswith("/_emulator")] == []
