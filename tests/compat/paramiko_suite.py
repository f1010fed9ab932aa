"""Run paramiko's own test suite with the server side swapped to geossh.

The strongest check of "change the import and it works": paramiko's tests,
from the sdist of the pinned release (fetched at run time with pip, never
kept in this repository), after a mechanical rewrite that takes every
server-side object from geossh (the Transport that runs ``start_server``,
the ``ServerInterface`` subclasses, the stub SFTP server's classes, host
keys, constants) while the client side stays the sdist's own paramiko.
Unit-test modules that exercise no client (keys, messages, pipes, channel
files) import geossh wherever geossh has the module.

The run is compared with ``paramiko_expected_failures.txt``: a test that
newly fails, or an expected failure that now passes, is an error (as gevent
runs CPython's stdlib tests). Usage::

    python -m tests.compat.paramiko_suite [--keep DIR] [-k EXPR]

Exit status 0 when the outcome matches, 1 when it does not, 2 when the
sdist could not be fetched.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PARAMIKO_VERSION = "5.1.0"
SDIST_SHA256 = "239b5f9b2a53006cd54f83cf8495ee742083708ead947882c8dd2786de79f39b"
# paramiko's test-only dependencies that geossh's own test extra lacks. They
# are installed into the cache for the subprocess only: pytest-relaxed
# changes test collection, so it must never load into geossh's own run.
TEST_PLUGINS = ("pytest-relaxed==2.0.2", "icecream==2.2.0")
TEST_FILES = (
    "test_transport.py",
    "test_client.py",
    "test_sftp.py",
    "test_sftp_big.py",
    "auth.py",
    "test_channelfile.py",
    "test_buffered_pipe.py",
    "test_message.py",
    "test_pkey.py",
    "pkey.py",
)
# Files with no client side: ``paramiko`` becomes ``geossh`` wherever geossh
# has the module and the names.
UNIT_FILES = ("test_channelfile.py", "test_buffered_pipe.py", "test_message.py",
              "test_pkey.py", "pkey.py")  # fmt: skip
HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
EXPECTED = HERE / "paramiko_expected_failures.txt"
RUN_TIMEOUT = 600.0  # the whole subprocess; a test hang is caught per test first
TEST_TIMEOUT = 60.0  # per test (a gevent timeout, as in geossh's own suite)


class SwapError(Exception):
    """The sdist no longer looks as the swap expects (a new paramiko release?)."""


@dataclass(frozen=True)
class Rule:
    """Replace ``old`` by ``new`` in ``path``, exactly ``count`` times."""

    path: str
    old: str
    new: str
    count: int = 1


GEOSSH_KEY_HELPER = '''

import io as _io


def _geossh_key(key):
    """The server side's own geossh copy of a key the test loaded with paramiko."""
    if key is None or isinstance(key, geossh.PKey):
        return key
    if key.can_sign():
        text = _io.StringIO()
        key.write_private_key(text)
        loader = getattr(geossh, type(key).__name__)
        return loader.from_private_key(_io.StringIO(text.getvalue()))
    return geossh.PKey.from_type_string(key.get_name(), key.asbytes())
'''

# The server side of each test module. Every rule must match exactly as
# often as stated, so a changed sdist fails loudly instead of testing less.
SERVER_SWAP = (
    # conftest: the in-memory SFTP server of test_sftp / test_sftp_big.
    Rule("conftest.py", "import pytest\n", "import pytest\nimport geossh\n"),
    Rule("conftest.py", "    ts = Transport(socks)", "    ts = geossh.Transport(socks)"),
    Rule("conftest.py", "    host_key = RSAKey.from_private_key_file(",
         "    host_key = geossh.RSAKey.from_private_key_file("),
    Rule("conftest.py", '"sftp", SFTPServer, StubSFTPServer',
         '"sftp", geossh.SFTPServer, StubSFTPServer'),
    # conftest: the ``keys`` fixture feeds only pkey.py (a geossh unit file here).
    Rule("conftest.py",
         "    short_type, full_type, key_class, fingerprint, passphrase = request.param\n",
         "    short_type, full_type, key_class, fingerprint, passphrase = request.param\n"
         "    key_class = getattr(geossh, key_class.__name__)\n"),
    Rule("conftest.py", "        PKey.from_path(cert, password=passphrase)",
         "        geossh.PKey.from_path(cert, password=passphrase)"),
    # The stub SFTP server: all of it is server side.
    Rule("_stub_sftp.py", "from paramiko import (", "from geossh import ("),
    Rule("_stub_sftp.py", "from paramiko.common import o666", "from geossh.common import o666"),
    # _util: the ServerInterface of test_transport and auth, server() helper.
    Rule("_util.py", "from ._loop import LoopSocket\n",
         "from ._loop import LoopSocket\n\nimport geossh\nfrom geossh import (\n"
         "    AUTH_FAILED,\n    AUTH_PARTIALLY_SUCCESSFUL,\n    AUTH_SUCCESSFUL,\n"
         "    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,\n    OPEN_SUCCEEDED,\n"
         "    InteractiveQuery,\n    ServerInterface,\n)\n" + GEOSSH_KEY_HELPER),
    Rule("_util.py", "    paranoid_key = Ed25519Key.from_private_key_file(",
         "    paranoid_key = geossh.Ed25519Key.from_private_key_file("),
    Rule("_util.py", "        server_transport_factory = transport_factory\n",
         "        server_transport_factory = geossh.Transport\n"),
    Rule("_util.py", "        hostkey = RSAKey.from_private_key_file(",
         "        hostkey = geossh.RSAKey.from_private_key_file("),
    # Keys a test hands to server() were loaded with paramiko: the server
    # side gets its own geossh copy, as a migrated server loads its keys.
    Rule("_util.py", "    ts.add_server_key(hostkey)\n",
         "    ts.add_server_key(_geossh_key(hostkey))\n"),
    Rule("_util.py", "    server = TestServer(allowed_keys=pubkeys)\n",
         "    server = TestServer(\n        allowed_keys=None if pubkeys is None"
         " else [_geossh_key(k) for k in pubkeys]\n    )\n"),
    # test_transport: the server Transport, its host keys, a server subclass.
    Rule("test_transport.py", "from ._loop import LoopSocket\n",
         "from ._loop import LoopSocket\nimport geossh\n"),
    Rule("test_transport.py", "        self.ts = Transport(self.socks)",
         "        self.ts = geossh.Transport(self.socks)"),
    Rule("test_transport.py", "        self.ts = ServiceRequestingTransport(self.socks)",
         "        self.ts = geossh.Transport(self.socks)"),
    Rule("test_transport.py",
         '        host_key = RSAKey.from_private_key_file(_support("rsa.key"))\n'
         "        public_host_key = RSAKey(data=host_key.asbytes())",
         '        host_key = geossh.RSAKey.from_private_key_file(_support("rsa.key"))\n'
         "        public_host_key = RSAKey(data=host_key.asbytes())", 4),
    Rule("test_transport.py", "        class AttackTransport(Transport):",
         "        class AttackTransport(geossh.Transport):"),
    # test_client: NullServer and the server Transport with its host keys.
    Rule("test_client.py", "import paramiko\n", "import paramiko\nimport geossh\n"),
    Rule("test_client.py", "class NullServer(paramiko.ServerInterface):",
         "class NullServer(geossh.ServerInterface):"),
    Rule("test_client.py", "return paramiko.AUTH_", "return geossh.AUTH_", 5),
    Rule("test_client.py", "else paramiko.AUTH_FAILED", "else geossh.AUTH_FAILED"),
    Rule("test_client.py", "return paramiko.OPEN_SUCCEEDED", "return geossh.OPEN_SUCCEEDED"),
    Rule("test_client.py", "        self.ts = paramiko.Transport(self.socks)",
         "        self.ts = geossh.Transport(self.socks)"),
    Rule("test_client.py", "        host_key = paramiko.RSAKey.from_private_key_file(keypath)",
         "        host_key = geossh.RSAKey.from_private_key_file(keypath)"),
    Rule("test_client.py", "        host_key = paramiko.ECDSAKey.from_private_key_file(keypath)",
         "        host_key = geossh.ECDSAKey.from_private_key_file(keypath)"),
)  # fmt: skip

_FROM_IMPORT = re.compile(
    r"^from paramiko((?:\.\w+)*) import (?:\(([^)]*)\)|([^(\n]+)$)", re.MULTILINE
)
_PATCH_TARGET = re.compile(r"""(["'])paramiko((?:\.\w+)+)\1""")


def _geossh_has(module: str, names: list[str]) -> bool:
    """Whether ``geossh<module>`` exists and has every one of ``names``."""
    import importlib

    try:
        mod = importlib.import_module("geossh" + module)
    except ImportError:
        return False
    return all(hasattr(mod, name) for name in names)


def _patch_target(dotted: str) -> str | None:
    """Where ``paramiko<dotted>`` (a ``mock.patch`` target) lives in geossh, or None.

    paramiko's module paths are re-exports in geossh; a target inside one
    (``paramiko.pkey.os.chmod``) is patched in the module that holds the code.
    """
    import importlib

    parts = dotted.strip(".").split(".")
    for split in range(len(parts), 0, -1):
        module = ".".join(parts[:split])
        for package in ("geossh", "geossh._facade", "geossh.services"):
            try:
                obj = importlib.import_module(f"{package}.{module}")
            except ImportError:
                continue
            for attr in parts[split:]:
                if not hasattr(obj, attr):
                    break
                obj = getattr(obj, attr)
            else:
                return ".".join([package, *parts])
    return None


def swap_unit_module(text: str) -> str:
    """``from paramiko.X import names`` (and patch targets) to geossh where geossh has them."""

    def imports(match: re.Match[str]) -> str:
        listed = match.group(2) if match.group(2) is not None else match.group(3)
        names = [n.strip() for n in listed.replace("\n", ",").split(",") if n.strip()]
        if not _geossh_has(match.group(1), names):
            return match.group(0)
        return "from geossh" + match.group(0)[len("from paramiko") :]

    def targets(match: re.Match[str]) -> str:
        target = _patch_target(match.group(2))
        if target is None:
            return match.group(0)
        return f"{match.group(1)}{target}{match.group(1)}"

    return _PATCH_TARGET.sub(targets, _FROM_IMPORT.sub(imports, text))


def apply_swap(tests: Path) -> list[str]:
    """Rewrite the sdist's ``tests`` directory in place; returns what changed."""
    done = []
    for rule in SERVER_SWAP:
        path = tests / rule.path
        text = path.read_text()
        found = text.count(rule.old)
        if found != rule.count:
            raise SwapError(f"{rule.path}: {rule.old!r} found {found}x, expected {rule.count}x")
        path.write_text(text.replace(rule.old, rule.new))
        done.append(f"{rule.path}: {rule.old.strip()[:60]!r}")
    for name in UNIT_FILES:
        path = tests / name
        text = path.read_text()
        swapped = swap_unit_module(text)
        if swapped == text:
            raise SwapError(f"{name}: nothing to swap")
        path.write_text(swapped)
        done.append(f"{name}: paramiko imports -> geossh")
    return done


# -- fetching ---------------------------------------------------------------------
def cache_dir() -> Path:
    """Where the sdist and the test plugins are kept between runs."""
    base = os.environ.get("GEOSSH_PARAMIKO_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "geossh" / f"paramiko-{PARAMIKO_VERSION}"


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    subprocess.run(cmd, check=True, timeout=300, stdin=subprocess.DEVNULL)


def fetch(cache: Path) -> tuple[Path, Path]:
    """The verified sdist and the directory of test plugins (fetched once)."""
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / f"paramiko-{PARAMIKO_VERSION}.tar.gz"
    if not sdist.exists() or _sha256(sdist) != SDIST_SHA256:
        sdist.unlink(missing_ok=True)
        _pip("download", f"paramiko=={PARAMIKO_VERSION}", "--no-deps", "--no-binary", ":all:",
             "-d", str(cache))  # fmt: skip
    digest = _sha256(sdist)
    if digest != SDIST_SHA256:
        raise RuntimeError(f"{sdist.name}: sha256 {digest}, expected {SDIST_SHA256}")
    plugins = cache / "plugins"
    marker = plugins / ".installed"
    if not marker.exists() or marker.read_text() != repr(TEST_PLUGINS):
        shutil.rmtree(plugins, ignore_errors=True)
        _pip("install", "--no-deps", "--target", str(plugins), *TEST_PLUGINS)
        marker.write_text(repr(TEST_PLUGINS))
    return sdist, plugins


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unpack(sdist: Path, into: Path) -> Path:
    """Extract the sdist; returns its top directory."""
    with tarfile.open(sdist) as tar:
        tar.extractall(into, filter="data")
    return into / f"paramiko-{PARAMIKO_VERSION}"


# -- running -----------------------------------------------------------------------
BOOTSTRAP = """\
from gevent import monkey
monkey.patch_all()
import sys, pytest
sys.exit(pytest.main(sys.argv[1:]))
"""

PLUGIN = f'''\
"""Loaded into paramiko's run: a gevent timeout per test, as in geossh's own suite."""
import gevent, pytest

@pytest.fixture(autouse=True)
def _geossh_test_timeout():
    timeout = gevent.Timeout({TEST_TIMEOUT}, AssertionError("test exceeded {TEST_TIMEOUT} s"))
    timeout.start()
    try:
        yield
    finally:
        timeout.close()
'''


def run_suite(root: Path, plugins: Path, work: Path, select: str | None) -> dict[str, str]:
    """Run the swapped suite; returns ``{test id: outcome}``."""
    support = work / "support"
    support.mkdir()
    (support / "geossh").symlink_to(REPO / "geossh")  # this tree's geossh, nothing else
    (support / "_geossh_suite_plugin.py").write_text(PLUGIN)
    report = work / "report.xml"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(support), str(plugins)])
    env["DISABLE_LOGGING"] = "1"  # paramiko's conftest logs DEBUG otherwise
    env.pop("PYTEST_ADDOPTS", None)
    args = [sys.executable, "-c", BOOTSTRAP, "-q", "-p", "no:cacheprovider", "-p", "no:geossh",
            "-p", "_geossh_suite_plugin", "--junitxml", str(report), "-o", "junit_family=xunit1",
            *[f"tests/{name}" for name in TEST_FILES]]  # fmt: skip
    if select:
        args += ["-k", select]
    log = work / "pytest.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        try:
            proc.wait(RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            tail = log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"paramiko's suite exceeded {RUN_TIMEOUT} s:\n{tail}") from None
    if not report.exists():
        raise RuntimeError("pytest wrote no report:\n" + log.read_text(errors="replace")[-4000:])
    return parse_report(report)


def parse_report(report: Path) -> dict[str, str]:
    """``{file::Class::test: passed|failed|skipped}`` from a JUnit XML report."""
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).iter("testcase"):
        file = case.get("file") or ""
        classname = case.get("classname", "")
        # classname is "tests.test_x.Class" (or "tests.test_x" for functions)
        module = file.replace(".py", "").replace("/", ".") if file else ""
        rest = classname[len(module) + 1 :] if module and classname.startswith(module) else ""
        parts = [file] + ([*rest.split(".")] if rest else []) + [case.get("name", "")]
        test_id = "::".join(parts)
        children = {child.tag for child in case}
        if children & {"failure", "error"}:
            outcome = "failed"
        elif "skipped" in children:
            outcome = "skipped"
        else:
            outcome = "passed"
        if outcomes.get(test_id) == "failed":  # a teardown error repeats the case
            continue
        outcomes[test_id] = outcome
    return outcomes


# -- comparing ---------------------------------------------------------------------
def load_expected(path: Path = EXPECTED) -> dict[str, str]:
    """``{test id: reason}``: sections ``[key] reason`` followed by test ids."""
    expected: dict[str, str] = {}
    reason = ""
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            key, _, text = line[1:].partition("]")
            reason = f"[{key}] {text.strip()}"
            if not text.strip():
                raise ValueError(f"{path.name}:{number}: section without a reason")
            continue
        if not reason:
            raise ValueError(f"{path.name}:{number}: test id before any reason")
        if line in expected:
            raise ValueError(f"{path.name}:{number}: {line} listed twice")
        expected[line] = reason
    return expected


def compare(outcomes: dict[str, str], expected: dict[str, str], partial: bool) -> list[str]:
    """What differs from the expected outcome (empty when it matches)."""
    problems = []
    for test_id, outcome in sorted(outcomes.items()):
        if outcome == "failed" and test_id not in expected:
            problems.append(f"NEW FAILURE: {test_id}")
        elif outcome == "passed" and test_id in expected:
            problems.append(f"UNEXPECTED PASS (remove it from the list): {test_id}")
    if not partial:
        for test_id in sorted(set(expected) - set(outcomes)):
            problems.append(f"LISTED BUT NOT RUN (renamed or removed?): {test_id}")
    return problems


def summary(outcomes: dict[str, str]) -> str:
    """One line per test file: passed / failed / skipped."""
    per_file: dict[str, Counter[str]] = {}
    for test_id, outcome in outcomes.items():
        per_file.setdefault(test_id.split("::", 1)[0], Counter())[outcome] += 1
    lines = []
    for file in sorted(per_file):
        count = per_file[file]
        lines.append(f"  {file:32} {count['passed']:4} passed {count['failed']:4} failed"
                     f" {count['skipped']:4} skipped")  # fmt: skip
    total = Counter(outcomes.values())
    lines.append(f"  {'total':32} {total['passed']:4} passed {total['failed']:4} failed"
                 f" {total['skipped']:4} skipped")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="work in DIR and keep it (for debugging)")
    parser.add_argument("-k", dest="select", help="only tests matching this pytest -k expression")
    parser.add_argument("--swap-only", action="store_true", help="unpack and swap, do not run")
    opts = parser.parse_args(argv)
    try:
        sdist, plugins = fetch(cache_dir())
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"cannot fetch paramiko {PARAMIKO_VERSION}'s sdist: {exc}", file=sys.stderr)
        return 2
    work = opts.keep or Path(tempfile.mkdtemp(prefix="geossh-paramiko-suite-"))
    if opts.keep:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    try:
        root = unpack(sdist, work)
        apply_swap(root / "tests")
        if opts.swap_only:
            print(f"swapped suite in {root}")
            return 0
        outcomes = run_suite(root, plugins, work, opts.select)
        expected = load_expected()
        problems = compare(outcomes, expected, partial=bool(opts.select))
        print(f"paramiko {PARAMIKO_VERSION}'s suite, server side geossh:")
        print(summary(outcomes))
        print(f"  expected failures listed: {len(expected)}")
        for line in problems:
            print(line)
        return 1 if problems else 0
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
