"""workers=2: MaxStartups, per-source limits, penalties and max_connections hold server-wide.

Every connection comes from 127.0.0.1 (one source). Verdicts are counted
from events (the version line or the refusal a client receives, and the
servers' log lines), never from timings.
"""

from __future__ import annotations

import json
import os
import re
import signal
import textwrap
from pathlib import Path
from typing import Any

import gevent
import gevent.socket
import pytest

from tests.server_kit import ServerProcess

SCRIPT = textwrap.dedent(
    """
    import json, logging, os, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(process)d %(name)s %(message)s")
    import geossh
    from geossh.runner.server import Server
    from tests.server_kit import Login

    keydir, options = sys.argv[1], json.loads(sys.argv[2])
    server = Server(
        ("127.0.0.1", 0), lambda: Login([]),
        host_keys=[geossh.PKey.from_path(os.path.join(keydir, "host_ed25519"))],
        workers=2, stop_timeout=5, **options,
    )
    server.bind()
    print(f"listening on 127.0.0.1:{server.port}", flush=True)
    server.serve_forever()
    """
)
SERVING = re.compile(r"worker (\d) \(pid (\d+)\) serving")
FULL = b"Too many connections; try again later\r\n"


class Flood:
    """Raw TCP connections from 127.0.0.1; each waits for the server's first line or EOF."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.socks: list[Any] = []

    def open(self, count: int) -> list[bytes]:
        """Open ``count`` connections one by one; what each received first (b"" = closed)."""
        firsts = []
        for _ in range(count):
            sock = gevent.socket.create_connection(("127.0.0.1", self.port), timeout=20)
            self.socks.append(sock)
            firsts.append(_first_line(sock))
        return firsts

    def local_ports(self) -> list[int]:
        return [sock.getsockname()[1] for sock in self.socks]

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.socks = []


def _first_line(sock: Any) -> bytes:
    """The first line the server sent, or b"" if it closed without one."""
    data = b""
    try:
        while not data.endswith(b"\n"):
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return data


def _workers(server: ServerProcess, count: int) -> dict[int, int]:
    """Wait (bounded) until ``count`` 'serving' lines are logged; {index: pid} of the latest."""
    with gevent.Timeout(30, AssertionError(f"workers did not start: {server.log()}")):
        while True:
            found = SERVING.findall(server.log())
            if len(found) >= count:
                return {int(index): int(pid) for index, pid in found}
            gevent.sleep(0.05)


def _logged(server: ServerProcess, text: str, count: int) -> int:
    """Wait (bounded) until ``text`` is logged ``count`` times; how often it was."""
    with gevent.Timeout(30, AssertionError(f"{count}x {text!r} never logged: {server.log()}")):
        while server.log().count(text) < count:
            gevent.sleep(0.05)
    return server.log().count(text)


@pytest.fixture
def start(keydir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    script = tmp_path / "limits_server.py"
    script.write_text(SCRIPT)
    started: list[tuple[ServerProcess, Flood]] = []

    def run(**options: Any) -> tuple[ServerProcess, Flood]:
        argv = [str(script), str(keydir), json.dumps(options)]
        server = ServerProcess(argv, tmp_path / "server.log").start()
        started.append((server, Flood(server.port)))
        _workers(server, 2)
        return started[-1]

    try:
        yield run
    finally:
        for server, flood in started:
            flood.close()
            server.stop()


def _verdicts(firsts: list[bytes]) -> tuple[int, int]:
    admitted = sum(1 for line in firsts if line.startswith(b"SSH-2.0-"))
    return admitted, len(firsts) - admitted


def test_max_startups_holds_across_workers(start: Any) -> None:
    server, flood = start(max_startups="4")
    firsts = flood.open(12)
    assert _verdicts(firsts) == (4, 8), firsts
    assert not [line for line in firsts if line and not line.startswith(b"SSH-2.0-")]
    assert _logged(server, "past MaxStartups (4 unauthenticated)", 8) == 8


def test_per_source_max_startups_holds_across_workers(start: Any) -> None:
    server, flood = start(max_startups=None, per_source_max_startups=3)
    firsts = flood.open(10)
    assert _verdicts(firsts) == (3, 7), firsts
    assert _logged(server, "past PerSourceMaxStartups (3 unauthenticated)", 7) == 7
    other = gevent.socket.create_connection(
        ("127.0.0.1", flood.port), timeout=20, source_address=("127.0.0.2", 0)
    )
    try:
        assert _first_line(other).startswith(b"SSH-2.0-")  # another source is not affected
    finally:
        other.close()


def test_penalty_holds_across_workers(start: Any) -> None:
    server, flood = start(max_startups=None, per_source_penalties="noauth:20s min:15s")
    assert flood.open(1)[0].startswith(b"SSH-2.0-")
    flood.close()  # left without trying: 20 s of penalty, enforced at once
    _logged(server, "penalty: 127.0.0.1/32 refused for 20 s (noauth", 1)
    firsts = flood.open(16)
    assert _verdicts(firsts) == (0, 16), firsts  # per worker, the other half would get in


def test_max_connections_refuses_across_workers(start: Any) -> None:
    server, flood = start(max_startups=None, per_source_penalties="no", max_connections=3)
    firsts = flood.open(9)
    assert _verdicts(firsts) == (3, 6), firsts
    assert firsts.count(FULL) == 6  # told, not left in the backlog
    assert _logged(server, "past max_connections (3 open)", 6) == 6


def test_killed_worker_gives_its_slots_back(start: Any) -> None:
    server, flood = start(max_startups="6", per_source_penalties="no", max_connections=6)
    assert _verdicts(flood.open(6)) == (6, 0)
    holders = _holders(server, flood)
    assert sum(holders.values()) == 6
    victim = max(holders, key=lambda pid: holders[pid])  # the worker holding the most
    held = holders[victim]
    assert _verdicts(flood.open(2)) == (0, 2)  # the budget is spent
    os.kill(victim, signal.SIGKILL)
    _workers(server, 3)  # reaped, released and restarted
    assert f"held {held} connection(s), {held} unauthenticated: released" in server.log()
    firsts = flood.open(held + 2)
    assert _verdicts(firsts) == (held, 2), firsts  # whole again: exactly its share is free


def _holders(server: ServerProcess, flood: Flood) -> dict[int, int]:
    """{worker pid: connections of ``flood`` it serves}, from its 'connection from' lines."""
    ports = set(flood.local_ports())
    found: dict[int, int] = {}
    pattern = re.compile(r"^(\d+) geossh\.server \[conn=\d+ 127\.0\.0\.1:(\d+)\] connection from")
    with gevent.Timeout(30, AssertionError(f"connections not logged: {server.log()}")):
        while sum(found.values()) < len(ports):
            found = {}
            for line in server.log().splitlines():
                match = pattern.match(line)
                if match and int(match.group(2)) in ports:
                    pid = int(match.group(1))
                    found[pid] = found.get(pid, 0) + 1
            if sum(found.values()) < len(ports):
                gevent.sleep(0.05)
    return found


def test_reuse_port_gives_each_worker_a_socket(start: Any) -> None:
    server, _ = start()
    pids = _workers(server, 2).values()
    inodes = []
    for pid in pids:
        listening = _listening_inodes(server.port)
        fds = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        inodes.append({i for i in listening if f"socket:[{i}]" in fds})
    assert all(len(mine) == 1 for mine in inodes) and inodes[0] != inodes[1], inodes


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on 127.0.0.1:``port`` (from /proc/net/tcp)."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
                inodes.add(fields[9])
    return inodes
