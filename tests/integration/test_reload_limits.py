"""A reload (SIGHUP) does not double the budget: old and new generations count together.

Verdicts come from what each raw connection receives (the version line, or
a close without it) and from log lines, never from timings.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import gevent.socket

from tests.integration.test_reload import closing, serve_cli  # noqa: F401 (a fixture)


class Held:
    """Raw TCP connections from 127.0.0.1, each read up to its first line or EOF."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.socks: list[Any] = []

    def open(self, count: int) -> list[bool]:
        """Open ``count`` connections one by one; True for each the server admitted."""
        verdicts = []
        for _ in range(count):
            sock = gevent.socket.create_connection(("127.0.0.1", self.port), timeout=20)
            self.socks.append(sock)
            verdicts.append(_first_line(sock).startswith(b"SSH-2.0-"))
        return verdicts

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.socks = []


def _first_line(sock: Any) -> bytes:
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


def test_max_startups_holds_across_a_reload_and_a_killed_generation(
    tmp_path: Path,
    keydir: Path,
    closing: list[Any],  # noqa: F811
) -> None:
    service = serve_cli(tmp_path, keydir, "--max-startups", "3", "--per-source-penalties", "no")
    closing.append(service)
    first = service.start().main
    old = Held(service.port)
    closing.append(old)
    assert old.open(2) == [True, True]  # two unauthenticated on the first generation
    second = service.reload()
    service.wait_line("draining: 2 connection(s) open")
    new = Held(service.port)
    closing.append(new)
    assert new.open(2) == [True, False]  # 2 + 1 = 3 server-wide: the next one is dropped
    service.wait_line("past MaxStartups (3 unauthenticated)")
    old.close()
    assert service.exited(first)  # drained: its slots are free again
    assert new.open(3) == [True, True, False]
    third = service.reload()  # the second generation drains with 3 unauthenticated
    service.wait_line("draining: 3 connection(s) open")
    service.signal(signal.SIGKILL, second)
    assert service.exited(second)
    service.wait_line(f"previous generation (pid {second}) gone: released 3 connection(s)")
    after = Held(service.port)
    closing.append(after)
    assert after.open(4) == [True, True, True, False]  # the whole budget, nothing leaked
    service.signal(signal.SIGTERM, third)
    assert service.finished() == 0
