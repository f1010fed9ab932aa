"""``benchmarks.conn_profile`` still runs OpenSSH's ``ssh`` against its servers.

No timing is asserted: two connections per server check that the harness
starts each server, that ``ssh host 'echo hi'`` succeeds against it (the
harness fails a round otherwise) and that the table is printed, including
``geossh-core``, the protocol core behind the leanest gevent loop.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_conn_profile_runs_ssh_against_the_core_floor_and_the_native_server() -> None:
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    argv = [sys.executable, "-m", "benchmarks.conn_profile", "--servers", "geossh-core,geossh"]
    result = subprocess.run(
        [*argv, "-n", "2", "--rounds", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ssh failed" not in result.stderr, result.stderr[-3000:]
    table = result.stdout
    assert "server CPU per connection" in table
    for name in ("geossh-core", "geossh"):
        assert any(line.startswith(name + " ") for line in table.splitlines()), table
