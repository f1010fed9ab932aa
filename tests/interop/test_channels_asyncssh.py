"""Channels and sessions with asyncssh's client: exec results, exit-signal,
pty with explicit terminal modes, env, subsystems, signal/break/resize
requests, keepalives and many concurrent sessions on one connection.

asyncssh runs its own event loop in a gevent thread-pool thread
(``in_thread``) while the geossh server keeps serving in the hub.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from tests.channel_app import app_of, use_channel_app
from tests.support import PASSWORD, USER, ServerHarness, in_thread

asyncssh = pytest.importorskip("asyncssh")
pytestmark = pytest.mark.interop
T = TypeVar("T")


def _run(server: ServerHarness, body: Callable[[Any], Awaitable[T]], **options: Any) -> T:
    use_channel_app(server)

    async def main() -> T:
        async with asyncssh.connect(
            "127.0.0.1", server.port, username=USER, password=PASSWORD, known_hosts=None,
            client_keys=None, agent_path=None, **options,
        ) as conn:  # fmt: skip
            return await body(conn)

    return in_thread(lambda: asyncio.run(main()))


def test_exec_results(server: ServerHarness) -> None:
    async def body(conn: Any) -> list[Any]:
        ok = await conn.run("echo hi there")
        failed = await conn.run("fail 9")
        return [(ok.stdout, ok.stderr, ok.exit_status), (failed.stdout, failed.stderr,
                                                          failed.exit_status)]  # fmt: skip

    assert _run(server, body) == [("hi there\n", "", 0), ("", "failing\n", 9)]


def test_exit_signal_is_decoded_by_asyncssh(server: ServerHarness) -> None:
    async def body(conn: Any) -> tuple[Any, Any, str]:
        result = await conn.run("signal KILL")
        return result.exit_signal, result.exit_status, result.stdout

    signal, status, out = _run(server, body)
    assert signal == ("KILL", False, "killed by a test", "en")
    assert status is None or status < 0  # no exit-status was sent
    assert out == "about to die\n"


def test_pty_with_terminal_modes_and_size(server: ServerHarness) -> None:
    modes = {asyncssh.PTY_ECHO: 0, asyncssh.PTY_VINTR: 3, asyncssh.PTY_OP_ISPEED: 9600,
             asyncssh.PTY_OP_OSPEED: 19200}  # fmt: skip

    async def body(conn: Any) -> str:
        result = await conn.run("modes", term_type="xterm", term_size=(77, 22, 640, 480),
                                term_modes=modes)  # fmt: skip
        return str(result.stdout)

    out = _run(server, body)
    decoded = dict(ast.literal_eval(out.strip()))  # the server printed sorted items
    assert decoded["ECHO"] == 0 and decoded["VINTR"] == 3
    assert (decoded["TTY_OP_ISPEED"], decoded["TTY_OP_OSPEED"]) == (9600, 19200)
    pty = next(r for r in app_of(server).requests if r[0] == "pty-req")
    assert pty[1:6] == (b"xterm", 77, 22, 640, 480)


def test_env_and_subsystem(server: ServerHarness) -> None:
    async def body(conn: Any) -> tuple[str, str]:
        env = await conn.run("env GEOSSH_FROM_ASYNCSSH", env={"GEOSSH_FROM_ASYNCSSH": "yes"})
        proc = await conn.create_process(subsystem="echo")
        proc.stdin.write("round trip\n")
        proc.stdin.write_eof()
        echoed = await proc.stdout.read()
        await proc.wait()
        return str(env.stdout), str(echoed)

    env_out, echoed = _run(server, body)
    assert env_out == "yes\n"
    assert echoed == "echo subsystem ready\nround trip\n"


def test_signal_break_and_resize_requests(server: ServerHarness) -> None:
    async def body(conn: Any) -> str:
        proc = await conn.create_process("waitsignal", term_type="vt100")
        assert await proc.stdout.readline() in ("waiting\n", "waiting\r\n")
        proc.change_terminal_size(101, 33)
        proc.send_break(250)
        proc.send_signal("TERM")
        out = await proc.stdout.read()
        await proc.wait()
        return str(out)

    assert _run(server, body).strip() == "got TERM"
    requests = app_of(server).requests
    assert ("window-change", 101, 33, 0, 0) in requests
    assert ("break", 250) in requests
    assert ("signal", "TERM") in requests


def test_keepalives_are_answered(server: ServerHarness) -> None:
    async def body(conn: Any) -> Any:
        return (await conn.run("keepalives 3")).stdout

    out = _run(server, body, keepalive_interval=0.2, keepalive_count_max=1)
    assert out == "saw 3 keepalives\n"


def test_many_concurrent_sessions_on_one_connection(server: ServerHarness) -> None:
    payloads = [os.urandom(256 * 1024 + n) for n in range(12)]

    async def body(conn: Any) -> list[str]:
        async def one(data: bytes) -> str:
            result = await conn.run("sha256", input=data, encoding=None)
            return bytes(result.stdout).decode().strip()

        return list(await asyncio.gather(*(one(p) for p in payloads)))

    assert _run(server, body) == [hashlib.sha256(p).hexdigest() for p in payloads]
    assert len(server.transports) == 1
