"""The shared retry policy inside Airflow: dag.test() runs the tasks through the task runner (which consults the
policy) against the emulator over HTTP. No balance fails at once; a rate limit retries after the provider's delay;
any other transient failure keeps the task's standard retries. docs/errors.md has the table."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from airflow.sdk import DAG, task

from artifact_harvest.core.dag_defaults import default_args
from artifact_harvest.core.retry import RetryRule
from artifact_harvest.minimax.hook import OUTPUT_PURPOSES, MiniMaxHook
from tests.support import load_dag, task_states

FAST = {"poll_interval": 0.05, "timeout": "PT30S"}
FILES_LIST = "/v1/files/list"


@pytest.fixture
def sandbox(airflow_db, emu, archive_root, staging_dir):
    return emu


def output(capfd) -> str:
    """What the task runner printed (dag.test() logs through structlog, not logging)."""
    out, err = capfd.readouterr()
    return out + err


def tries(run, task_id: str) -> list[tuple[int, str, float | None, str | None]]:
    """``(try_number, state, retry_delay_override, retry_reason)`` of every try: history rows, then the live one."""
    from airflow import settings
    from airflow.models.taskinstancehistory import TaskInstanceHistory

    session = settings.Session()
    past = session.query(TaskInstanceHistory).filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id)
    [live] = [ti for ti in run.get_task_instances() if ti.task_id == task_id]
    rows = [*sorted(past, key=lambda h: h.try_number), live]
    return [(r.try_number, r.state, r.retry_delay_override, r.retry_reason) for r in rows]


def list_files_dag(dag_id: str, **args) -> DAG:
    """One task, the pipelines' default_args (and their policy), one MiniMax call with no in-process resend."""
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False,
             default_args=default_args(**args)) as dag:
        @task
        def list_files() -> int:
            return len(MiniMaxHook(retry=RetryRule(attempts=1)).list_files(OUTPUT_PURPOSES[0]))

        list_files()
    return registered(dag)


def registered(dag: DAG) -> DAG:
    """The DAG written to the metadata DB as the dag-processor would (dag.test() runs only serialized DAGs)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)
    return dag


def test_no_balance_fails_at_once_without_the_tasks_retries(sandbox, archive_root, capfd):
    sandbox.control.push_scenario("minimax", error_code=1008)
    dag = load_dag("minimax_generate_video")
    assert dag.task_dict["create"].retries == 2  # what the policy saves
    run = dag.test(run_conf={"prompt": "a red kite", **FAST})
    assert run.state == "failed" and task_states(run)["create"] == "failed"
    [(try_number, state, delay, _)] = tries(run, "create")
    assert (try_number, state, delay) == (1, "failed", None)
    text = output(capfd)
    assert "Retry policy decision" in text and "code 1008" in text
    assert "fails without retrying: top up the MiniMax account" in text
    assert len(sandbox.control.requests("/v1/video_generation")) == 1
    assert not any(archive_root.iterdir())


def test_qianfan_quota_fails_at_once_without_the_tasks_retries(sandbox, archive_root, capfd):
    sandbox.control.add_fault(route="/v2/model", kind="envelope", status=400, times=-1, body={
        "requestId": "q-1", "code": "QuotaLimitExceeded", "message": "quota limit exceeded"})
    run = load_dag("qianfan_export_model").test(run_conf={"model_version_id": "amv-quota1", **FAST})
    assert run.state == "failed" and task_states(run)["create_export"] == "failed"
    [(try_number, state, _, _)] = tries(run, "create_export")
    assert (try_number, state) == (1, "failed")
    text = output(capfd)
    assert "code QuotaLimitExceeded" in text and "fails without retrying: raise the Qianfan quota" in text
    assert not any(archive_root.iterdir())


@pytest.mark.timeout(120)  # the task's own delay is an hour: only the provider's 1 s lets the run end
def test_rate_limit_retries_after_the_providers_delay(sandbox):
    sandbox.control.add_fault(route=FILES_LIST, kind="envelope", retry_after=1, times=1,
                              body={"base_resp": {"status_code": 1002, "status_msg": "rate limit"}})
    run = list_files_dag("retry_policy_rate_limit", retries=1, retry_delay=timedelta(hours=1)).test()
    assert run.state == "success", task_states(run)
    (first, second) = tries(run, "list_files")
    assert (first[0], first[2]) == (1, 1.0)  # the provider's Retry-After, not the task's hour
    assert "code 1002" in first[3] and "retrying after the provider's Retry-After (1 s)" in first[3]
    assert second[:2] == (2, "success")
    assert len(sandbox.control.requests(FILES_LIST)) == 2


def test_other_transient_errors_keep_the_standard_retries(sandbox, capfd):
    sandbox.control.add_fault(route=FILES_LIST, kind="envelope", times=1,
                              body={"base_resp": {"status_code": 1024, "status_msg": "internal error"}})
    run = list_files_dag("retry_policy_transient", retries=1, retry_delay=timedelta(0),
                         retry_exponential_backoff=0).test()
    assert run.state == "success", task_states(run)
    (first, second) = tries(run, "list_files")
    assert (first[0], first[2], first[3]) == (1, None, None)  # RetryAction.DEFAULT: no override, no reason
    assert second[:2] == (2, "success")
    assert "internal error" in output(capfd)
