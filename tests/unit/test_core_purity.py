"""The protocol core stays pure: no gevent, sockets, threads, select or clocks.

Two checks. The AST check reads every module under ``geossh/proto`` (and the
geossh modules it imports from outside, such as ``geossh.errors``) and
refuses a direct import of a forbidden module, an upward import of the
driver, and dynamic imports. The runtime check imports the whole core in a
fresh interpreter, without ``geossh/__init__.py`` (which loads the driver),
and confirms nothing reached gevent or the network stack transitively;
``threading`` and ``time`` are loaded by the standard library's ``logging``
and cannot be checked that way, which is why the AST check exists.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "geossh" / "proto"
FORBIDDEN = {"gevent", "greenlet", "socket", "threading", "select", "selectors", "time"}
FORBIDDEN_GEOSSH = ("geossh._green", "geossh._facade", "geossh.services", "geossh.runner")
DYNAMIC = {"__import__", "import_module"}


def imported_names(tree: ast.AST, package: str) -> list[str]:
    """Absolute names of every module ``tree`` imports (relative ones resolved)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def module_name(path: Path) -> tuple[str, str]:
    """(module name, package name) of a file under the repository root."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def core_files() -> list[Path]:
    """Every file of the core, plus geossh modules outside it that the core imports."""
    files = sorted(PROTO.rglob("*.py"))
    outside: set[Path] = set()
    for path in files:
        _, package = module_name(path)
        for imported in imported_names(ast.parse(path.read_text()), package):
            if imported.startswith("geossh.") and not imported.startswith("geossh.proto"):
                candidate = ROOT / (imported.replace(".", "/") + ".py")
                if candidate.exists():
                    outside.add(candidate)
    return files + sorted(outside)


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_forbidden_imports(path: Path) -> None:
    name, package = module_name(path)
    tree = ast.parse(path.read_text())
    for imported in imported_names(tree, package):
        assert imported.split(".")[0] not in FORBIDDEN, (name, imported)
        assert not imported.startswith(FORBIDDEN_GEOSSH), (name, imported)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            assert called not in DYNAMIC, (name, called)


def test_relative_imports_are_resolved() -> None:
    tree = ast.parse("from ..errors import X\nfrom . import wire\n")
    names = imported_names(tree, "geossh.proto")
    assert names == ["geossh.errors", "geossh.errors.X", "geossh.proto", "geossh.proto.wire"]


IMPORT_CORE = """
import importlib, pkgutil, sys, types
package = types.ModuleType("geossh")
package.__path__ = [sys.argv[1]]
sys.modules["geossh"] = package
import geossh.proto
for info in pkgutil.walk_packages(geossh.proto.__path__, "geossh.proto."):
    importlib.import_module(info.name)
print(" ".join(sorted(sys.modules)))
"""


def test_core_imports_nothing_impure_transitively() -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_CORE, str(ROOT / "geossh")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    loaded = set(result.stdout.split())
    assert "geossh.proto.connection" in loaded
    assert not loaded & {"gevent", "greenlet", "socket", "select", "selectors", "asyncio"}
    outside = {m for m in loaded if m.startswith("geossh.") and not m.startswith("geossh.proto")}
    assert outside <= {"geossh.errors"}, outside
