"""Which part of geossh may import which: the layer table, checked with ``ast``.

``LAYERS`` puts every module of ``geossh/`` in one layer (a module path, or
a package prefix covering its submodules; the longest match wins) and says
which layers it may import. Data flows up from the pure core: a module may
import its own layer and those listed, never one above it.
``docs/architecture.md`` explains the layers.

Every import counts, including those inside functions and under
``TYPE_CHECKING``: a lazy upward import is still an upward dependency.
Today's exceptions are listed in ``EXCEPTIONS`` with their reason; an
exception that is no longer needed fails too, so the list only shrinks.
``test_core_purity`` additionally keeps gevent, sockets, threads and clocks
out of ``geossh/proto``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit.test_core_purity import ROOT, module_name

PACKAGE = ROOT / "geossh"

#: The top-level modules that only re-export: paramiko's module names and
#: geossh's documented paths.
SHIMS = tuple(
    f"geossh.{name}"
    for name in (
        # paramiko's module names
        "agent",
        "buffered_pipe",
        "channel",
        "cli",
        "common",
        "ecdsakey",
        "ed25519key",
        "file",
        "message",
        "packetizer",
        "pkey",
        "rsakey",
        "server",
        "sftp_attr",
        "sftp_handle",
        "sftp_server",
        "sftp_si",
        "ssh_exception",
        "transport",
        "util",
        # geossh's documented paths
        "audit",
        "authorized_keys",
        "forward",
        "metrics",
        "observer",
        "oscommand",
        "pty",
        "pytest_plugin",
        "session",
        "skkey",
    )
)


@dataclass(frozen=True)
class Layer:
    name: str
    members: tuple[str, ...]  # module names or package prefixes
    may_import: tuple[str, ...]  # other layers (its own is always allowed)
    owns: str


# Bottom to top.
LAYERS = (
    Layer(
        "base",
        ("geossh._version", "geossh.logtext"),
        (),
        "the version, peer text made safe for logs",
    ),
    Layer("core", ("geossh.proto",), ("base",), "the pure protocol state machines"),
    Layer(
        "errors",
        ("geossh.errors",),
        ("base", "core"),
        "paramiko's exception tree around the core's errors",
    ),
    Layer(
        "driver",
        ("geossh._green",),
        ("base", "core", "errors"),
        "gevent I/O: pump, pipes, fairness",
    ),
    Layer(
        "facade",
        ("geossh._facade",),
        ("base", "core", "errors", "driver"),
        "paramiko's object model",
    ),
    Layer(
        "services",
        ("geossh.services",),
        ("base", "core", "errors", "driver", "facade"),
        "sessions, forwarding, OS commands, authorized_keys, terminal modes",
    ),
    Layer(
        "sftp", ("geossh.sftp",), ("base", "core", "errors", "driver", "facade"), "SFTP v3 and scp"
    ),
    Layer(
        "runner",
        ("geossh.runner", "geossh.__main__"),
        ("base", "core", "errors", "driver", "facade", "services", "sftp"),
        "listening, admission, PROXY, workers, systemd, host-key store, CLI, observability",
    ),
    Layer(
        "shims",
        tuple(SHIMS),
        ("base", "core", "errors", "driver", "facade", "services", "sftp", "runner"),
        "paramiko's and geossh's documented import paths: re-exports only",
    ),
    Layer(
        "package",
        ("geossh",),
        ("base", "core", "errors", "driver", "facade", "services", "sftp", "runner", "shims"),
        "the public names (``import geossh as paramiko``)",
    ),
)

#: (importer, imported) → why the upward import is there today.
EXCEPTIONS: dict[tuple[str, str], str] = {}

#: Import cycles between modules that exist today (each a set of modules).
KNOWN_CYCLES: dict[frozenset[str], str] = {
    frozenset({"geossh.proto.keys", "geossh.proto._certs", "geossh.proto._skcerts"}): (
        "certificates and keys share private helpers (_skcerts: the security-key "
        "certificates' parser, split out of _certs)"
    ),
    frozenset(
        f"geossh._facade.{name}" for name in ("pkey", "rsakey", "ecdsakey", "ed25519key", "skkey")
    ): ("PKey's factories name their subclasses (paramiko's layout)"),
    frozenset(
        f"geossh._facade.{name}"
        for name in (
            "transport",
            "channel",
            "server",
            "dispatch",
            "callbacks",
            "authentication",
            "limits",
        )
    ): "Transport is built from mixins that call back into it (issue 17: composition)",
    frozenset(
        {
            "geossh.runner",
            "geossh.runner.server",
            "geossh.runner.generation",
            "geossh.runner.workers",
        }
    ): ("Server drives generations and workers, which run Server's serving loop"),
}


def all_modules() -> dict[str, Path]:
    """Every module under ``geossh/`` by its dotted name."""
    return {module_name(path)[0]: path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = all_modules()


def _resolve(name: str) -> str | None:
    """The geossh module ``name`` refers to (the longest existing prefix), or None."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def module_imports(path: Path) -> set[str]:
    """The geossh modules the file ``path`` imports anywhere in its body."""
    name, package = module_name(path)
    return imports_in(path.read_text(), name, package)


def imports_in(source: str, name: str, package: str) -> set[str]:
    """The geossh modules ``source`` (module ``name`` of ``package``) imports.

    ``from geossh import generation`` counts as importing ``geossh.generation``
    (not the package), ``from geossh.errors import X`` as ``geossh.errors``.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
            targets = submodules if len(submodules) == len(node.names) else [base]
        for target in targets:
            if target == "geossh" or target.startswith("geossh."):
                resolved = _resolve(target)
                if resolved is not None and resolved != name:
                    found.add(resolved)
    return found


def layer_of(module: str) -> Layer | None:
    """The layer whose longest member is ``module`` or a package holding it.

    ``geossh`` itself matches only the package's ``__init__``, so a module
    missing from the table has no layer.
    """
    best: tuple[int, Layer] | None = None
    for layer in LAYERS:
        for member in layer.members:
            covers = module.startswith(member + ".") and member != "geossh"
            if (module == member or covers) and (best is None or len(member) > best[0]):
                best = (len(member), layer)
    return best[1] if best else None


def edges() -> Iterator[tuple[str, str]]:
    for name, path in MODULES.items():
        for imported in sorted(module_imports(path)):
            yield name, imported


def violations(module: str, imported: set[str]) -> list[str]:
    """Why each of ``imported`` is not allowed in ``module`` (exceptions aside)."""
    layer = layer_of(module)
    if layer is None:
        return [f"{module} has no layer: add it to LAYERS"]
    found = []
    for target_name in sorted(imported):
        target = layer_of(target_name)
        if target is None:
            found.append(f"{module} imports {target_name}, which has no layer: add it to LAYERS")
        elif target is not layer and target.name not in layer.may_import:
            found.append(
                f"{module} ({layer.name}) imports {target_name} ({target.name}); "
                f"{layer.name} may import {', '.join(layer.may_import) or 'nothing'}"
            )
    return found


def upward_imports() -> set[tuple[str, str]]:
    """Every (importer, imported) whose layers the table does not allow."""
    return {
        (importer, imported) for importer, imported in edges() if violations(importer, {imported})
    }


# -- the table itself -----------------------------------------------------------------
def test_every_module_has_a_layer() -> None:
    missing = sorted(name for name in MODULES if layer_of(name) is None)
    assert not missing, f"add these modules to LAYERS in {__file__}: {missing}"


def test_layers_form_a_stack() -> None:
    """Each layer may import only layers below it: the table has no cycle."""
    names = [layer.name for layer in LAYERS]
    assert len(set(names)) == len(names)
    for position, layer in enumerate(LAYERS):
        assert set(layer.may_import) <= set(names[:position]), layer.name


# -- the code against the table ---------------------------------------------------------
@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_import(module: str) -> None:
    allowed = {imported for importer, imported in EXCEPTIONS if importer == module}
    assert not violations(module, module_imports(MODULES[module]) - allowed)


def test_every_exception_is_still_needed() -> None:
    stale = sorted(set(EXCEPTIONS) - upward_imports())
    assert not stale, f"these imports are gone or allowed now; remove them from EXCEPTIONS: {stale}"


def test_no_new_import_cycle() -> None:
    """Every cycle between modules lies within one of today's known cycles."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for importer, imported in edges():
        graph[importer].add(imported)
    for component in _cycles(graph):
        assert any(component <= known for known in KNOWN_CYCLES), sorted(component)


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


# -- shims ------------------------------------------------------------------------------
@pytest.mark.parametrize("module", LAYERS[-2].members)
def test_shims_hold_only_imports(module: str) -> None:
    """A paramiko import path that only re-exports: imports, ``__all__``, a docstring."""
    tree = ast.parse(MODULES[module].read_text())
    for node in tree.body:
        docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        exports = isinstance(node, ast.Assign) and all(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        )
        assert isinstance(node, (ast.Import, ast.ImportFrom)) or docstring or exports, (
            module,
            node.lineno,
        )


def test_shims_are_imported_by_the_package_only() -> None:
    shims = set(LAYERS[-2].members)
    users = {(a, b) for a, b in edges() if b in shims and layer_of(a) is not LAYERS[-1]}
    assert not users, sorted(users)


# -- the checker itself -----------------------------------------------------------------
def test_from_package_import_submodule_counts_as_the_submodule() -> None:
    source = "from geossh.runner import generation\n"
    assert imports_in(source, "geossh.runner.server", "geossh.runner") == {
        "geossh.runner.generation"
    }
    assert "geossh" not in module_imports(MODULES["geossh.runner.server"])


def test_an_upward_import_is_found() -> None:
    source = "from geossh.proto import wire\n\ndef f():\n    from geossh._facade.channel import C\n"
    imported = imports_in(source, "geossh.proto.example", "geossh.proto")
    assert imported == {"geossh.proto.wire", "geossh._facade.channel"}
    (problem,) = violations("geossh.proto.example", imported)
    assert "geossh._facade.channel (facade)" in problem
    facade_and_driver = {"geossh._facade.transport", "geossh._green.pipe"}
    assert not violations("geossh.sftp.example", facade_and_driver)
    assert violations("geossh.services.session", {"geossh.sftp.server"})  # siblings stay apart
    assert violations("geossh._facade.transport", {"geossh"})  # nothing imports the package
    assert violations("geossh.services.session", {"geossh.transport"})  # nor a shim


def test_layer_lookup_takes_the_longest_match() -> None:
    assert getattr(layer_of("geossh.proto.kex.dh"), "name", None) == "core"
    assert getattr(layer_of("geossh.sftp_attr"), "name", None) == "shims"
    assert getattr(layer_of("geossh.sftp.server"), "name", None) == "sftp"
    assert getattr(layer_of("geossh"), "name", None) == "package"
    assert layer_of("geossh.newmodule") is None
