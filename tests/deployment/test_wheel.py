"""`make dist`'s wheel, pip-installed into a fresh venv, is what that venv's Airflow loads: the provider, its
three connection types and its config section, the Artifacts plugin, and the eight example DAGs from a dags
folder holding one import line.

What is substituted, and only that: the fresh venv does not download Airflow and the other dependencies from
PyPI (minutes). It sees the project venv's installed packages (the pinned set) through a ``.pth`` file naming a
folder of links to them, leaving out the project's own editable install (its dist-info, ``__editable__``
finder and ``.pth`` files), and the wheel goes in with ``pip install --no-deps``. That the wheel's declared
dependencies and extras are met by those pins is checked on its own (pip's resolver, no index). The build itself
is `make dist`'s command (PyPA build: the sdist in an isolated environment, then the wheel from that sdist), run
with a throwaway venv holding ``build``; it fetches setuptools from the package index, as pip would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "plugins" / "artifact_harvest"
EXAMPLE_DAG_IDS = {
    "flighthub2_archive_project_models", "flighthub2_download_model", "flighthub2_reconstruct_model",
    "minimax_archive_file", "minimax_archive_new_files", "minimax_generate_speech", "minimax_generate_video",
    "qianfan_export_model",
}
CONNECTION_TYPES = {
    "flighthub2": "artifact_harvest.flighthub2.hook.FlightHub2Hook",
    "minimax": "artifact_harvest.minimax.hook.MiniMaxHook",
    "qianfan": "artifact_harvest.qianfan.hook.QianfanHook",
}
#: the project's own install, hidden from the fresh venv
HIDDEN = re.compile(r"^(artifact_harvest|artifact-harvest|__editable__).*|.*\.pth$")


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the checkout on PYTHONPATH and without the suite's Airflow settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "PYTHON", "_AIRFLOW")) and k != "VIRTUAL_ENV"}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 240) -> str:
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _venv_over_project_packages(path: Path, overlay: Path) -> Path:
    """A new venv (no pip of its own) that sees ``overlay``; returns its python."""
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", "--without-pip", str(path)], _clean_env(), path.parent)
    python = path / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        _clean_env(), path.parent).strip())
    (purelib / "project-site-packages.pth").write_text(f"{overlay}\n")
    return python


@pytest.fixture(scope="module")
def overlay(tmp_path_factory) -> Path:
    """Links to every entry of the project venv's site-packages but the project's own install."""
    folder = tmp_path_factory.mktemp("project-site-packages")
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not HIDDEN.match(entry.name):
            (folder / entry.name).symlink_to(entry)
    assert (folder / "airflow").exists() and not list(folder.glob("artifact_harvest*"))
    return folder


@pytest.fixture(scope="module")
def dist(tmp_path_factory, overlay) -> Path:
    """`make dist` (its own command, a throwaway venv's python with the pinned ``build``) into a tmp folder."""
    tmp = tmp_path_factory.mktemp("dist")
    python = _venv_over_project_packages(tmp / "build-venv", overlay)
    pin = next(line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("build=="))
    _run([str(python), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt"), pin], _clean_env(),
         tmp)
    _run(["make", "-s", "-C", str(ROOT), "dist", f"BIN={python.parent}", "STAMP=", f"DIST={tmp / 'dist'}"],
         _clean_env(), tmp, timeout=280)
    assert not (ROOT / "artifact_harvest.egg-info").exists()  # no second copy of the metadata left on sys.path
    return tmp / "dist"


@pytest.fixture(scope="module")
def wheel(dist) -> Path:
    wheels = list(dist.glob("artifact_harvest-*-py3-none-any.whl"))
    assert len(wheels) == 1 and len(list(dist.glob("artifact_harvest-*.tar.gz"))) == 1, list(dist.iterdir())
    return wheels[0]


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory, overlay, wheel) -> Path:
    """The fresh venv with the wheel installed (``pip install --no-deps``); returns its python."""
    python = _venv_over_project_packages(tmp_path_factory.mktemp("fresh") / "venv", overlay)
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], _clean_env(),
         wheel.parent)
    return python


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, fresh_venv):
    """``airflow <args>`` with the fresh venv's own interpreter, a new AIRFLOW_HOME and SQLite (migrated)."""
    home = tmp_path_factory.mktemp("airflow-home")
    dags = home / "dags"
    dags.mkdir()
    (dags / "artifact_harvest_dags.py").write_text("from artifact_harvest.example_dags import *  # airflow DAGs\n")
    env = _clean_env(AIRFLOW_HOME=str(home), AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
                     AIRFLOW__CORE__DAGS_FOLDER=str(dags), AIRFLOW__CORE__LOAD_EXAMPLES="False")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([str(fresh_venv), "-m", "airflow", *args], capture_output=True, text=True,
                                env=env, cwd=home, timeout=240)
        assert not check or result.returncode == 0, f"airflow {args}: {result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        return result

    run("db", "migrate")
    return run


def _json(text: str) -> list[dict]:
    """The JSON list a CLI command printed last (Airflow may print log lines, some starting with "[", before it)."""
    decoder = json.JSONDecoder()
    for start in re.finditer(r"^\[", text, flags=re.M):
        try:
            value, end = decoder.raw_decode(text, start.start())
        except ValueError:
            continue
        if isinstance(value, list) and not text[end:].strip():
            return value
    raise AssertionError(f"no JSON list in the output: {text[-2000:]}")


def test_wheel_holds_both_entry_points_every_module_and_the_plugin_page(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
        page = zf.read("artifact_harvest/ui/page.html")
        metadata = zf.read(f"{dist_info}/METADATA").decode()
    assert "[apache_airflow_provider]\nprovider_info = artifact_harvest.provider_info:get_provider_info" in entry_points
    assert "[airflow.plugins]\nartifact_harvest = artifact_harvest.ui.plugin:ArtifactsPlugin" in entry_points
    assert page == (PACKAGE / "ui" / "page.html").read_bytes()
    sources = {f"artifact_harvest/{p.relative_to(PACKAGE).as_posix()}" for p in PACKAGE.rglob("*.py")}
    sources |= {f"harvest_emulator/{p.name}" for p in (ROOT / "include" / "harvest_emulator").glob("*.py")}
    assert sources <= names, sorted(sources - names)
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "dags/"))]
    assert {"Provides-Extra: s3", "Provides-Extra: redis", "Provides-Extra: lineage"} <= set(metadata.splitlines())


def test_wheel_dependencies_and_extras_are_met_by_the_pinned_packages(tmp_path, overlay, wheel):
    """pip's resolver, with no index, over the pinned packages: only the wheel itself would be installed."""
    python = _venv_over_project_packages(tmp_path / "venv", overlay)
    report = json.loads(_run([str(python), "-m", "pip", "install", "--dry-run", "--no-index", "--quiet",
                              "--report", "-", f"{wheel}[s3,redis,lineage]"], _clean_env(PIP_CONFIG_FILE=os.devnull),
                             tmp_path))
    assert [item["metadata"]["name"] for item in report["install"]] == ["artifact-harvest"]


def test_fresh_venv_over_project_packages_imports_the_wheel_not_the_checkout(fresh_venv, tmp_path):
    out = _run([str(fresh_venv), "-c", "import artifact_harvest, importlib.metadata as m, importlib.resources as r;"
                "print(artifact_harvest.__file__); print(m.distribution('artifact-harvest').locate_file(''));"
                "print(len(r.files('artifact_harvest.ui').joinpath('page.html').read_text()))"],
               _clean_env(), tmp_path).split("\n")
    venv = fresh_venv.parent.parent
    assert Path(out[0]).is_relative_to(venv) and Path(out[1]).is_relative_to(venv), out
    assert int(out[2]) > 1000


def test_fresh_venv_airflow_lists_the_provider_its_connection_types_and_its_config(airflow):
    providers = {row["package_name"]: row for row in _json(airflow("providers", "list", "-o", "json").stdout)}
    assert providers["artifact-harvest"]["version"] == "0.1.0"
    hooks = {row["connection_type"]: row for row in _json(airflow("providers", "hooks", "-o", "json").stdout)}
    for conn_type, hook_class in CONNECTION_TYPES.items():
        assert hooks[conn_type]["class"] == hook_class and hooks[conn_type]["package_name"] == "artifact-harvest"
    assert airflow("config", "get-value", "artifact_harvest", "verify_concurrency").stdout.strip() == "2"


def test_fresh_venv_airflow_lists_the_artifacts_plugin(airflow):
    plugins = {row["name"]: row for row in _json(airflow("plugins", "-o", "json").stdout)}
    plugin = plugins["artifact_harvest"]
    assert plugin["source"].startswith("artifact-harvest==0.1.0: EntryPoint(")
    assert [app["url_prefix"] for app in plugin["fastapi_apps"]] == ["/artifacts"]
    assert {view["destination"] for view in plugin["external_views"]} == {"nav", "dag_run"}


def test_fresh_venv_airflow_dags_list_shows_the_eight_example_dags(airflow):
    listed = airflow("dags", "list", "--local", "-o", "json", check=False)
    dag_ids = {row["dag_id"] for row in _json(listed.stdout)}
    if dag_ids != EXAMPLE_DAG_IDS or listed.returncode != 0:
        errors = airflow("dags", "list-import-errors", "--local", "-o", "json", check=False)
        pytest.fail(f"listed {sorted(dag_ids)} (exit {listed.returncode}): {listed.stderr[-1000:]}\n"
                    f"import errors: {errors.stdout[-3000:]}")
