"""workers=2: forked processes share the listening socket, are supervised, stop on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import textwrap
from pathlib import Path

import gevent
import gevent.pool
import gevent.subprocess
import pytest

from tests.conftest import require
from tests.server_kit import ServerProcess, run, ssh_argv

SCRIPT = textwrap.dedent(
    """
    import logging, os, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
    import geossh
    from geossh.runner.server import Server
    from tests.server_kit import Login

    keydir = sys.argv[1]
    user_keys = [geossh.PKey.from_path(os.path.join(keydir, "user_ed25519"))]

    def handler(session):
        if session.command == b"wait":
            session.write("waiting\\n")
            session.write(f"got {session.readline()} in {os.getpid()}\\n")
        else:
            session.write(f"{os.getpid()}\\n")
        return 0

    server = Server(
        ("127.0.0.1", 0), lambda: Login(user_keys),
        host_keys=[geossh.PKey.from_path(os.path.join(keydir, "host_ed25519"))],
        handler=handler, workers=2, max_startups=None, stop_timeout=20,
    )
    server.bind()
    print(f"listening on 127.0.0.1:{server.port}", flush=True)
    server.serve_forever()
    """
)
SERVING = re.compile(r"worker (\d) \(pid (\d+)\) serving")


def _workers(server: ServerProcess, count: int) -> dict[int, int]:
    """Wait (bounded) until ``count`` 'serving' lines are logged; {index: pid} of the latest."""
    with gevent.Timeout(30, AssertionError(f"workers did not start: {server.log()}")):
        while True:
            found = SERVING.findall(server.log())
            if len(found) >= count:
                return {int(index): int(pid) for index, pid in found}
            gevent.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def workers(keydir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    require("ssh")
    script = tmp_path / "workers_server.py"
    script.write_text(SCRIPT)
    server = ServerProcess([str(script), str(keydir)], tmp_path / "server.log").start()
    try:
        yield server
    finally:
        server.stop()


def test_two_workers_serve_200_connections(workers: ServerProcess, keydir: Path) -> None:
    pids = set(_workers(workers, 2).values())
    assert len(pids) == 2 and os.getpid() not in pids
    pool = gevent.pool.Pool(25)
    argv = ssh_argv(workers.port, keydir / "user_ed25519", "pid")
    results = pool.map(lambda _: run(argv), range(200))
    failures = [r.stderr for r in results if r.returncode != 0]
    assert not failures, failures[:3]
    served = {int(r.stdout) for r in results}
    assert served <= pids
    assert served == pids, f"only {served} of {pids} served (log: {workers.log()[-2000:]})"


def test_dead_worker_is_restarted(workers: ServerProcess, keydir: Path) -> None:
    first = _workers(workers, 2)
    os.kill(first[0], signal.SIGKILL)
    latest = _workers(workers, 3)
    assert latest[0] != first[0] and latest[1] == first[1]
    assert f"worker 0 (pid {first[0]}) killed by SIGKILL; restarting it" in workers.log()
    result = run(ssh_argv(workers.port, keydir / "user_ed25519", "pid"))
    assert result.returncode == 0 and int(result.stdout) in latest.values()


def test_sigterm_stops_all_gracefully(workers: ServerProcess, keydir: Path) -> None:
    pids = _workers(workers, 2).values()
    argv = ssh_argv(workers.port, keydir / "user_ed25519", "wait")
    session = gevent.subprocess.Popen(
        argv, stdin=gevent.subprocess.PIPE, stdout=gevent.subprocess.PIPE
    )
    assert session.stdout.readline() == b"waiting\n"
    workers.signal(signal.SIGTERM)
    with gevent.Timeout(30, AssertionError("workers did not begin stopping")):
        while "stopping: 1 connection(s) open" not in workers.log():
            gevent.sleep(0.05)
    out, _ = session.communicate(b"bye\n", timeout=30)
    assert out.startswith(b"got bye in ")  # the session finished during the graceful stop
    assert session.returncode == 0
    assert workers.wait(30) == 0
    assert not [pid for pid in pids if _alive(pid)]
    assert "supervisor: all workers stopped" in workers.log()
