"""The plugin as Airflow loads it (entry point), and the extra link of every download operator."""

from __future__ import annotations

import pytest

from artifact_harvest.core.assets import ArtifactDetailLink, artifact_page_url
from artifact_harvest.core.operators import DownloadAndArchiveOperator
from artifact_harvest.flighthub2.operators import FlightHub2DownloadModelOperator
from artifact_harvest.minimax.operators import MiniMaxDownloadOperator
from artifact_harvest.qianfan.operators import QianfanDownloadExportOperator

DOWNLOAD_OPERATORS = [FlightHub2DownloadModelOperator, MiniMaxDownloadOperator, QianfanDownloadExportOperator]


def test_every_download_operator_is_one_with_the_artifact_link():
    known = {cls for cls in _subclasses(DownloadAndArchiveOperator) if cls.provider}
    assert known == set(DOWNLOAD_OPERATORS)
    for cls in DOWNLOAD_OPERATORS:
        assert any(isinstance(link, ArtifactDetailLink) for link in cls.operator_extra_links)


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


@pytest.mark.parametrize("cls", DOWNLOAD_OPERATORS)
def test_mapped_download_tasks_have_the_provider_outlet(cls):
    from airflow.sdk import DAG

    from artifact_harvest.core.assets import asset_for

    with DAG(f"outlets_{cls.provider}"):
        mapped = cls.partial(task_id="t").expand_kwargs([{"artifact_key": "a"}])
    assert mapped.outlets == [asset_for(cls.provider)]


def test_link_points_into_the_ui_and_quotes_the_key():
    link = ArtifactDetailLink()
    op = MiniMaxDownloadOperator(task_id="t", file_id="a b&c")
    assert link.get_link(op, ti_key=None) == "/plugin/artifacts?provider=minimax&key=a+b%26c"
    assert artifact_page_url("flighthub2", "m-1") == "/plugin/artifacts?provider=flighthub2&key=m-1"


def test_the_plugin_loads_from_the_entry_point():
    from airflow import plugins_manager

    apps, _ = plugins_manager.get_fastapi_plugins()
    assert [a["url_prefix"] for a in apps if a["name"] == "Artifact Harvest artifacts"] == ["/artifacts"]
    from importlib.metadata import entry_points

    [ep] = [ep for ep in entry_points(group="airflow.plugins") if ep.name == "artifact_harvest"]
    assert ep.value == "artifact_harvest.ui.plugin:ArtifactsPlugin"
    views = ep.load().external_views
    assert {(v["destination"], v["url_route"]) for v in views} == {("nav", "artifacts"), ("dag_run", "artifacts-run")}


def test_loading_the_plugin_leaves_the_app_to_the_api_server():
    """Every Airflow process loads plugins (the listener manager); only the API server may pay for the app."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from airflow.sdk.listener import get_listener_manager\n"
        "from airflow.listeners.listener import get_listener_manager as core_listener_manager\n"
        "get_listener_manager(); core_listener_manager()\n"
        "from airflow import plugins_manager\n"
        "names = [p.name for p in plugins_manager._get_plugins()[0]]\n"
        "print(names.count('artifact_harvest'), 'artifact_harvest.ui.app' in sys.modules, 'fastapi' in sys.modules)\n"
        "plugins_manager.get_fastapi_plugins()\n"
        "print('artifact_harvest.ui.app' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded, served = done.stdout.splitlines()[-2:]
    assert loaded == "1 False False"  # the plugin is loaded, the app and FastAPI are not
    assert served == "True"
