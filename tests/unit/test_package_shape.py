"""The shape of the artifact_harvest package, read from its source (no import needed): no import cycle, and no
module longer than ``MAX_LINES``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "plugins" / "artifact_harvest"
ROOT = PACKAGE.parent
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every artifact_harvest module ``path`` imports, at module level or inside a function (every AST node).

    ``from pkg import x`` counts as an import of ``pkg.x`` when that is a module, else of ``pkg``. The parent
    packages Python runs first are not counted: a package's ``__init__`` is finished before its modules are
    used, so it never closes a cycle by itself (only ``core.transfer``'s re-exports anything)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found |= {target for target in targets if target in modules and target != name}
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of module names, or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_cycle_in_the_package():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert graph["artifact_harvest.core.transfer.downloader"]  # the walk sees imports at all
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_walk_finds_function_level_cycles():
    """The checker itself: a cycle closed by an import inside a function is one too."""
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_function_level_imports_are_seen(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from artifact_harvest.core import errors\n")
    assert _imports("artifact_harvest.x", source, {"artifact_harvest.core.errors": source}) == {
        "artifact_harvest.core.errors"
    }


def test_transfer_imports_only_go_down():
    """Nothing outside the package's public face imports the downloader's parts, and no part imports its caller."""
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    transfer = {name for name in modules if name.startswith("artifact_harvest.core.transfer.")}
    assert not any("artifact_harvest.core.transfer.downloader" in graph[name] for name in transfer)
    assert not any(
        target.startswith(("artifact_harvest.minimax", "artifact_harvest.qianfan", "artifact_harvest.flighthub2",
                           "artifact_harvest.ui"))
        for name in modules if name.startswith("artifact_harvest.core") for target in graph[name]
    ), "core knows no provider"


@pytest.mark.parametrize("name", sorted(_modules()))
def test_no_module_over_the_limit(name):
    lines = len(_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (limit {MAX_LINES}): split it by concern"
