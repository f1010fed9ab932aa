"""``benchmarks.conn_profile`` still runs OpenSSH's ``ssh`` against its servers.

No timing is asserted: two connections per server check that the harness
starts each server, that ``ssh host 'echo hi'`` succeeds against it (the
harness fails a round otherwise) and that the table is printed, including
``geossh-core``, the protocol core behind the leanest gevent loop.
"""

from __future__ import annotations

from tests.integration.test_benchmarks_smoke import need_tools, run_module


def test_conn_profile_runs_ssh_against_the_core_floor_and_the_native_server() -> None:
    need_tools("ssh", "ssh-keygen")
    servers = "geossh-core,geossh"
    result = run_module("benchmarks.conn_profile", "--servers", servers, "-n", "2", "--rounds", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ssh failed" not in result.stderr, result.stderr[-3000:]
    table = result.stdout
    assert "server CPU per connection" in table
    for name in ("geossh-core", "geossh"):
        assert any(line.startswith(name + " ") for line in table.splitlines()), table
