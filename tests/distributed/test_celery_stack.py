"""The docker-compose topology run for real: CeleryExecutor, PostgreSQL, Redis, separate processes."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.distributed


def test_probe_runs_on_celery(stack):
    stack.api.wait_for_dags(["harvest_probe"], timeout=120)
    stack.api.unpause("harvest_probe")
    run_id = stack.api.trigger("harvest_probe", {})
    assert stack.api.wait_for_run("harvest_probe", run_id, timeout=120) == "success"
