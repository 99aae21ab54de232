"""The pipelines ship in the package: one line in a user's dags folder gives all eight DAGs, and this repository's
dags/ (one builder call per file) gives the same eight without duplicates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import DAGS
from tests.unit.test_package_shape import _imports, _modules

#: what docs/own-airflow.md tells users to put in their dags folder
ONE_LINE = "from artifact_harvest.example_dags import *  # airflow DAGs: the artifact-harvest pipelines\n"
#: the repository's DAG files are named after their DAG ids
DAG_IDS = {path.stem for path in DAGS.glob("*.py") if not path.name.startswith("_")}


def _bag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    # safe mode, as the dag-processor parses by default: a file must mention "airflow" and "dag"
    return DagBag(dag_folder=str(folder), safe_mode=True)


def test_there_are_eight_pipelines():
    assert len(DAG_IDS) == 8, sorted(DAG_IDS)


@pytest.mark.parametrize("fresh", [True, False], ids=["first-import", "module-cached"])
def test_one_line_dags_folder_gives_the_eight_pipelines(tmp_path, monkeypatch, fresh):
    """First import: the DAGs are made while the file is parsed (auto-registered to it, and in its globals).
    Cached (a second parse in the same process): they arrive through the ``import *`` globals alone."""
    if fresh:
        monkeypatch.delitem(sys.modules, "artifact_harvest.example_dags", raising=False)
    dag_file = tmp_path / "artifact_harvest_dags.py"
    dag_file.write_text(ONE_LINE)
    bag = _bag(tmp_path)
    assert not bag.import_errors, bag.import_errors
    assert set(bag.dags) == DAG_IDS
    assert {dag.fileloc for dag in bag.dags.values()} == {str(dag_file)}
    from artifact_harvest import example_dags

    assert set(example_dags.__all__) == DAG_IDS


def test_the_repository_dags_folder_has_each_pipeline_once():
    """Each dags/ file builds its one DAG; none imports example_dags (that would register all eight in every
    file: duplicate DAG ids)."""
    bag = _bag(DAGS)
    assert not bag.import_errors, bag.import_errors
    assert set(bag.dags) == DAG_IDS
    assert {dag_id: Path(dag.fileloc).name for dag_id, dag in bag.dags.items()} == {
        dag_id: f"{dag_id}.py" for dag_id in DAG_IDS
    }
    for path in DAGS.glob("*.py"):
        assert "example_dags" not in path.read_text(), path.name


def test_nothing_in_the_package_imports_example_dags():
    """Importing it makes eight DAGs: only a user's DAG file may do that."""
    modules = _modules()
    importers = [name for name, path in modules.items()
                 if "artifact_harvest.example_dags" in _imports(name, path, modules)]
    assert importers == []


def test_the_pipeline_modules_make_no_dag_at_import():
    """A DAG made at import would be registered to whichever DAG file first imports the module."""
    code = (
        "import gc\n"
        "import artifact_harvest.pipelines.flighthub2, artifact_harvest.pipelines.minimax, "
        "artifact_harvest.pipelines.qianfan\n"
        "from airflow.sdk import DAG\n"
        "from artifact_harvest.pipelines.qianfan import build_qianfan_export_model\n"
        "before = sum(type(o) is DAG for o in gc.get_objects())\n"
        "dag = build_qianfan_export_model()\n"
        "print(before, sum(type(o) is DAG for o in gc.get_objects()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(),
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["0", "1"]  # none at import; the builder makes one
