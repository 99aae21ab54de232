"""The image is the tested environment: every version the Dockerfile's pip install resolves comes from constraints.txt,
agrees with requirements.txt, and is the one installed where the suite runs; nothing requirements.txt needs at
run time is left out (s3fs once was). Read from the files: no Docker daemon runs on these machines.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
PROJECT = "artifact-harvest"
#: in requirements.txt for the suite and `make dist` only, not for the image
DEVELOPMENT_ONLY = {"pytest", "pytest-asyncio", "pytest-timeout", "pytest-xdist", "moto", "playwright", "build"}
#: what `pip freeze` (constraints.txt) leaves out; requested unversioned (setuptools), the image's own satisfies it
PACKAGING_TOOLS = {"pip", "setuptools", "wheel"}


def _pins(path: Path) -> dict[str, str]:
    """``name -> version`` of every ``name==version`` line (extras and comments ignored)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            spec = [s for s in req.specifier if s.operator == "=="]
            if spec:
                pins[canonicalize_name(req.name)] = spec[0].version
    return pins


REQUIREMENTS, CONSTRAINTS = _pins(ROOT / "requirements.txt"), _pins(ROOT / "constraints.txt")


def _instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in DOCKERFILE.read_text().splitlines()
                                         if not line.lstrip().startswith("#")))
    return [(m.group(1).upper(), m.group(2)) for m in re.finditer(r"^\s*(\w+)\s+(.*)$", text, flags=re.M)]


def _base_image() -> tuple[str, str]:
    """``(Airflow version, Python version)`` of the FROM tag."""
    froms = [args for name, args in _instructions() if name == "FROM"]
    assert len(froms) == 1, froms
    match = re.fullmatch(r"apache/airflow:(\d+\.\d+\.\d+)-python(\d+\.\d+)", froms[0].strip())
    assert match, f"FROM {froms[0]}: the official image with an explicit Python"
    return match.group(1), match.group(2)


def _copied() -> dict[str, Path]:
    """Image path -> repository path of every COPY."""
    paths = {}
    for name, args in _instructions():
        if name == "COPY":
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            *sources, dest = words
            for source in sources:
                paths[f"{dest.rstrip('/')}/{Path(source).name}" if dest.endswith("/") else dest] = ROOT / source
    return paths


def _pip_install() -> tuple[list[Path], list[Requirement], set[str]]:
    """The image's one pip install: (its constraint files, the requirements it names, the extras of the project)."""
    runs = [shlex.split(args) for name, args in _instructions() if name == "RUN" and "pip install" in args]
    assert len(runs) == 1, runs
    words, copied = runs[0][2:], _copied()
    constraints, requirements, extras = [], [], set()
    airflow_version = _base_image()[0]
    while words:
        word = words.pop(0)
        if word in ("-c", "--constraint"):
            constraints.append(copied[words.pop(0)])
        elif word in ("-r", "--requirement"):
            for line in copied[words.pop(0)].read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    requirements.append(Requirement(line))
        elif word.startswith("-"):
            assert word in ("--no-cache-dir",), f"pip option {word}: check what it changes, then allow it here"
        elif word.startswith("/"):  # the project, copied beside its pyproject.toml
            path, _, rest = word.partition("[")
            assert copied[f"{path.rstrip('/')}/pyproject.toml"] == ROOT / "pyproject.toml", word
            extras = set(filter(None, rest.rstrip("]").split(",")))
            requirements.append(Requirement(f"{PROJECT}[{','.join(sorted(extras))}]" if extras else PROJECT))
        else:
            requirements.append(Requirement(word.replace("${AIRFLOW_VERSION}", airflow_version)))
    return constraints, requirements, extras


def _requires(name: str, extras: set[str]) -> list[Requirement]:
    """What ``name[extras]`` requires where the suite runs (the project's from pyproject.toml)."""
    if canonicalize_name(name) == PROJECT:
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        lines = project["dependencies"] + [line for extra in extras
                                           for line in project["optional-dependencies"][extra]]
        return [Requirement(line) for line in lines]
    found = []
    for line in importlib.metadata.distribution(name).requires or []:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate({"extra": extra}) for extra in extras | {""}):
            found.append(req)
    return found


def _closure(requirements: list[Requirement]) -> dict[str, set[str]]:
    """Every distribution pip resolves for ``requirements`` (as installed here), with the extras asked of it."""
    seen: dict[str, set[str]] = {}
    todo = [(r.name, set(r.extras)) for r in requirements]
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if key in seen and extras <= seen[key]:
            continue
        seen[key] = seen.get(key, set()) | extras
        todo.extend((r.name, set(r.extras)) for r in _requires(name, seen[key]))
    return seen


def test_requirements_and_constraints_pin_the_same_versions():
    assert REQUIREMENTS, "no pins read"
    differ = {name: (version, CONSTRAINTS.get(name)) for name, version in REQUIREMENTS.items()
              if CONSTRAINTS.get(name) != version}
    assert not differ, f"requirements.txt vs constraints.txt: {differ}"


def test_image_is_the_tested_airflow_on_the_tested_python():
    airflow, python = _base_image()
    assert airflow == REQUIREMENTS["apache-airflow"] == CONSTRAINTS["apache-airflow"]
    assert python == f"{sys.version_info.major}.{sys.version_info.minor}", (
        "constraints.txt is the set resolved and tested on the Python the suite runs on; the image must use it")


def test_every_version_the_image_requests_comes_from_constraints_txt():
    constraints, requirements, _ = _pip_install()
    assert constraints == [ROOT / "constraints.txt"]
    for req in requirements:
        name = canonicalize_name(req.name)
        if name == PROJECT:
            continue
        assert name in CONSTRAINTS, f"{req} is not pinned in constraints.txt"
        assert req.specifier.contains(CONSTRAINTS[name]), f"{req} excludes constraints.txt's {CONSTRAINTS[name]}"
        if name in REQUIREMENTS:
            assert req.specifier.contains(REQUIREMENTS[name]), f"{req} vs requirements.txt {REQUIREMENTS[name]}"


def test_the_image_installs_everything_requirements_txt_needs_at_run_time():
    """The s3:// archive's amazon provider and s3fs, boto3, Celery's pin...: all in what the image resolves."""
    _, requirements, extras = _pip_install()
    assert {"s3", "redis"} <= extras
    resolved = _closure(requirements)
    runtime = set(REQUIREMENTS) - DEVELOPMENT_ONLY
    assert runtime - set(resolved) == set(), "requirements.txt needs these, the image does not install them"
    amazon = resolved["apache-airflow-providers-amazon"]
    assert "s3fs" in amazon, "the amazon provider without its s3fs extra"


def test_everything_the_image_resolves_is_pinned_to_the_version_tested_here():
    _, requirements, _ = _pip_install()
    unpinned, differ = [], {}
    for name in sorted(_closure(requirements)):
        if name == PROJECT or name in PACKAGING_TOOLS:
            continue
        if name not in CONSTRAINTS:
            unpinned.append(name)
            continue
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"{name} is resolved for the image but not installed where the suite runs")
        if installed != CONSTRAINTS[name]:
            differ[name] = (CONSTRAINTS[name], installed)
    assert not unpinned, f"constraints.txt pins none of {unpinned}: pip would take whatever is newest"
    assert not differ, f"constraints.txt vs installed here: {differ} (make install)"
