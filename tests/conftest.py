"""Shared fixtures: keys made by ssh-keygen, an in-process geossh server, real clients.

The geossh server runs in this process's gevent hub. Real clients run
beside it without stalling the hub: OpenSSH tools through
``gevent.subprocess``, paramiko and asyncssh in gevent's thread pool.
Every test gets a gevent timeout (``GEOSSH_TEST_TIMEOUT``, default 60 s).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest

from tests.support import ServerHarness, generate_keys


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run long soak/fuzz tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _gevent_timeout() -> Iterator[None]:
    """Fail a test that hangs instead of hanging the run."""
    seconds = float(os.environ.get("GEOSSH_TEST_TIMEOUT", "60"))
    timeout = gevent.Timeout(seconds, AssertionError(f"test exceeded {seconds} s"))
    timeout.start()
    try:
        yield
    finally:
        timeout.close()


@pytest.fixture(scope="session")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of host and user keys made by ssh-keygen (once per session)."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen not installed")
    path = tmp_path_factory.mktemp("keys")
    generate_keys(path)
    return path


@pytest.fixture
def server(keydir: Path) -> Iterator[ServerHarness]:
    """A geossh server on 127.0.0.1:<free port>; configure it before connecting."""
    harness = ServerHarness(keydir)
    try:
        yield harness
    finally:
        harness.stop()


def require(tool: str) -> str:
    """Path of an installed client tool, or skip the test with the reason."""
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} must be installed in CI (.ci/run installs it)")
        pytest.skip(f"{tool} not installed")
    return path


def ssh_version() -> str:
    """The installed OpenSSH client's version banner."""
    result = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
    return result.stderr.strip()
