"""Per-channel collections a client fills are capped; beyond the cap requests fail.

Real clients flood them: OpenSSH's ``ssh`` with ``SendEnv=LC_*`` and
thousands of ``LC_`` variables (sshd keeps 128), asyncssh sending ``signal``
requests nobody reads, paramiko asking for a channel the application
answers with ``None``. Each case ends with the connection still serving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

import geossh
from geossh._facade.callbacks import MAX_ENV_REQUESTS
from geossh.runner.server import Server
from geossh.services.session import (
    MAX_ENV_BYTES,
    MAX_ENV_VARS,
    MAX_SIGNALS,
    Session,
    SessionDispatcher,
    SessionHandlers,
)
from tests.server_kit import Login, make_server, run, ssh_argv
from tests.support import PASSWORD, USER, ServerHarness, TestServer, in_thread

FLOOD = 2000


def _report(session: Session) -> int:
    """exec ``env``: how many variables the session kept; ``signals``: how many it kept."""
    if session.command_text == "signals":
        session.stdin.read()  # the signals come before the client's EOF
        session.write(f"{len(session.signals)} {session.signals[:2]}\n")
    else:
        session.write(f"{len(session.env)} {session.env.get('LC_0')}\n")
    return 0


@pytest.fixture
def handler_server(keydir: Path) -> Iterator[Server]:
    users = [geossh.PKey.from_path(str(keydir / "user_ed25519"))]
    server = make_server(keydir, interface=lambda: Login(users), handler=_report)
    server.start()
    yield server
    server.stop(timeout=1)


def test_openssh_env_flood_keeps_128(handler_server: Server, keydir: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", **{f"LC_{i}": f"value{i}" for i in range(FLOOD)}}
    argv = ssh_argv(handler_server.port, keydir / "user_ed25519", "env",
                    extra=["-o", "SendEnv=LC_*"])  # fmt: skip
    result = run(argv, env=env)
    assert result.returncode == 0, result.stderr
    count, first = result.stdout.decode().split()
    assert int(count) == MAX_ENV_VARS == MAX_ENV_REQUESTS == 128
    assert first == "value0"  # the first ones are kept, later ones refused


def test_asyncssh_signal_flood_keeps_a_bounded_list(handler_server: Server) -> None:
    async def flood() -> str:
        import asyncssh

        async with asyncssh.connect(
            "127.0.0.1", handler_server.port, username=USER, password=PASSWORD,
            known_hosts=None, client_keys=None, agent_path=None,
        ) as conn:  # fmt: skip
            process = await conn.create_process("signals")
            for _ in range(FLOOD // 10):
                process.send_signal("USR1")
            process.stdin.write_eof()
            out = await process.stdout.read()
            await process.wait()
            return str(out)

    out = in_thread(lambda: asyncio.run(flood()))
    assert out == f"{MAX_SIGNALS} ['USR1', 'USR1']\n"


class _FakeChannel:
    """What SessionDispatcher keys its per-channel state on."""


def test_dispatcher_refuses_env_beyond_the_caps() -> None:
    dispatcher = SessionDispatcher(geossh.ServerInterface(), SessionHandlers())
    chan: Any = _FakeChannel()
    answers = [
        dispatcher.check_channel_env_request(chan, f"LC_{i}".encode(), b"x") for i in range(200)
    ]
    assert answers == [True] * MAX_ENV_VARS + [False] * (200 - MAX_ENV_VARS)
    assert dispatcher.check_channel_env_request(chan, b"LC_0", b"replaced")  # not a new one
    big = dispatcher._state(_FakeChannel())  # type: ignore[arg-type]
    assert big.set_env("LANG", "x" * (MAX_ENV_BYTES - 4))
    assert not big.set_env("TZ", "UTC")
    assert big.set_env("LANG", "C")  # replacing frees the bytes
    assert big.set_env("TZ", "UTC")


class _AcceptingEverything(TestServer):
    """paramiko-style: every env accepted and kept (as paramiko's demo server does)."""


def test_paramiko_style_app_is_asked_at_most_128_times(server: ServerHarness) -> None:
    server.interface = _AcceptingEverything
    server.start()

    def body() -> bytes:
        transport = paramiko.Transport(("127.0.0.1", server.port))
        try:
            transport.connect(username=USER, password=PASSWORD)
            chan = transport.open_session()
            for i in range(FLOOD // 4):
                chan.set_environment_variable(f"V{i}", "x")  # want_reply false, as ssh sends
            chan.exec_command("echo still here")
            return chan.makefile("rb").read()
        finally:
            transport.close()

    assert in_thread(body) == b"still here\n"
    assert len(server.servers[0].env) == MAX_ENV_REQUESTS  # type: ignore[attr-defined]


class _NoneAnswers(TestServer):
    """Channel-open callbacks that return None (a forgotten ``return``)."""

    def check_channel_request(self, kind: str, chanid: int) -> Any:
        return None if kind == "x-none@example.com" else super().check_channel_request(kind, chanid)

    def check_channel_direct_tcpip_request(self, chanid: int, origin: Any, dest: Any) -> Any:
        return None


def test_open_callback_returning_none_refuses(server: ServerHarness) -> None:
    server.interface = _NoneAnswers
    server.start()

    def body() -> tuple[list[int], bytes]:
        transport = paramiko.Transport(("127.0.0.1", server.port))
        try:
            transport.connect(username=USER, password=PASSWORD)
            codes = []
            for kind, dest in (("x-none@example.com", None), ("direct-tcpip", ("127.0.0.1", 9))):
                try:
                    args = (dest, ("127.0.0.1", 4000)) if dest else ()
                    transport.open_channel(kind, *args, timeout=20)
                except paramiko.ChannelException as exc:
                    codes.append(exc.code)
            chan = transport.open_session()
            chan.exec_command("echo still here")
            return codes, chan.makefile("rb").read()
        finally:
            transport.close()

    prohibited = paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
    assert in_thread(body) == ([prohibited, prohibited], b"still here\n")
