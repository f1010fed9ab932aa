"""The benchmark harness still works: a tiny run against every Python server.

No timing is asserted: this only checks that ``python -m benchmarks`` starts
the servers, runs each workload once on a tiny size, and writes its table
and JSON. sshd is left out (it may be missing and its install is slow).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_module(*argv: str) -> subprocess.CompletedProcess[str]:
    """``python -m argv...`` from the repository, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def need_tools(*tools: str) -> None:
    """Skip unless every client tool is installed (CI installs them all)."""
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")


def test_benchmarks_smoke(tmp_path: Path) -> None:
    need_tools("ssh", "sftp", "ssh-keygen")
    pytest.importorskip("paramiko")
    pytest.importorskip("asyncssh")
    servers = "geossh,paramiko,asyncssh,geossh-app,paramiko-app"
    result = run_module(
        "benchmarks", "--smoke", "--no-install", "--servers", servers, "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "geossh/paramiko" in result.stdout
    document = json.loads((tmp_path / "latest-smoke.json").read_text())
    assert document["errors"] == [], document["errors"]
    geossh = document["results"]["geossh"]
    for metric in (
        "conn.cpu_ms",
        "conn.rate",
        "bulk.aes128-gcm.up_MBps",
        "scale.4.opened",
        "load.p99_ms",
        "ossh.seq_wall_ms",
        "ossh.flight_sys_ms",
    ):
        assert metric in geossh, sorted(geossh)
    app = document["results"]["geossh-app"]  # the paramiko-style application, migrated
    for metric in ("ossh.seq_user_ms", "sftp.get_MBps", "scale.4.opened"):
        assert metric in app, sorted(app)
    assert "conn.cpu_ms" not in app  # apps take part in the OpenSSH, SFTP and scale rows only
    assert "ossh.flight_cpu_ms" in document["ratios"]
    assert "app geossh/paramiko" in result.stdout
    assert geossh["scale.4.opened"] == [4]
    assert set(document["ratios"]["conn.cpu_ms"]) == {"paramiko", "asyncssh"}
    assert (tmp_path / "latest-smoke.txt").exists()
