"""What importing migratrack pulls in: a worker installs the parts it uses, nothing more."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import migratrack

SRC = Path(migratrack.__file__).resolve().parents[1]


def test_the_sdk_and_its_http_client_import_no_server_package() -> None:
    # A worker installs migratrack[client] (httpx alone): the SDK must not need FastAPI & co.
    # A fresh interpreter, since this one has imported the server for other tests.
    code = ("import migratrack, migratrack.sdk.tracker, migratrack.sdk.remote, sys; "
            "bad=[m for m in ('fastapi','starlette','uvicorn','sse_starlette') if m in sys.modules]; "
            "assert not bad, bad")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_reporting_to_a_server_without_httpx_names_the_client_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "migratrack.sdk.remote", raising=False)
    with pytest.raises(migratrack.ConfigurationError, match=r"pip install 'migratrack\[client\]'"):
        migratrack.MigrationProgressTracker("x", url="http://127.0.0.1:9")


# -- import cycles ---------------------------------------------------------------------------
#
# Every import counts, the ones inside functions too: a lazy import back still ties two modules
# together (neither loads, tests or moves without the other) and only hides the cycle until the
# function runs. Imports under `if TYPE_CHECKING:` never run and are left out. Importing
# `pkg.mod` also runs `pkg/__init__`; that implicit step is left out as well, or every package
# that re-exports its modules (as migratrack's does for the SDK) would be a cycle with each.


def _modules(package: Path) -> dict[str, tuple[Path, bool]]:
    """module name -> (file, is a package)"""
    out = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def _under_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif not _under_type_checking(node):
            yield from _imports(node)


def import_graph(package: Path) -> dict[str, set[str]]:
    """module -> the modules of the same package it imports (at module level or in a function)"""
    modules = _modules(package)

    def known(name: str) -> str | None:  # `a.b.C` (a class in a.b) is a.b
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, (path, is_package) in modules.items():
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from the module's package, one level up per extra dot
                    here = module.split(".")[: None if is_package else -1]
                    base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
                # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod itself
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            graph[module] |= {t for t in map(known, targets) if t is not None and t != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle (its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return [*path[path.index(n):], n]
            if n not in state and (cycle := visit(n)):
                return cycle
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_no_import_cycle_inside_migratrack() -> None:
    cycle = find_cycle(import_graph(SRC / "migratrack"))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.a import f\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.c\n"
                              "def f():\n    from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def g():\n    from .. import c\n")
    (pkg / "c.py").write_text("import json\n")
    assert find_cycle(import_graph(pkg)) is None  # a imports c for type checking only
    (pkg / "c.py").write_text("class C:\n    def h(self):\n        from pkg.a import f\n")
    assert find_cycle(import_graph(pkg)) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
