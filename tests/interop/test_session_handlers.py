"""Blocking session handlers and OSCommand against real clients; the pytest fixture in use."""

from __future__ import annotations

import asyncio
import importlib.metadata
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.subprocess
import pytest
from gevent.event import Event

from geossh.runner.pytest_plugin import GeosshTestServer, geossh_server  # noqa: F401 (fixture)
from geossh.runner.server import Server
from geossh.services.oscommand import OSCommand
from geossh.services.session import Session
from tests.conftest import require
from tests.server_kit import make_server, paramiko_client, python_env, run, ssh_argv
from tests.support import PASSWORD, USER, in_thread

pytestmark = pytest.mark.interop


@pytest.fixture
def start(keydir: Path) -> Iterator[Any]:
    """``start(**server_kwargs)`` → a started in-process Server that accepts the test keys."""
    import geossh

    users = [geossh.PKey.from_path(str(keydir / "user_ed25519"))]
    started: list[Server] = []

    def factory(**kwargs: Any) -> Server:
        from tests.server_kit import Login

        server = make_server(keydir, interface=lambda: Login(users), **kwargs)
        server.start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop(timeout=1)


def _ssh(server: Server, keydir: Path, *remote: str, **kwargs: Any) -> Any:
    extra = kwargs.pop("extra", ())
    env = kwargs.pop("env", None)
    argv = ssh_argv(server.port, keydir / "user_ed25519", *remote, extra=extra)
    return run(argv, env=env, **kwargs)


def report(session: Session) -> int:
    """exec: print what the session knows; stdin's size to stderr; exit status 5."""
    pty = session.pty and (session.pty.term, session.pty.width, session.pty.height)
    session.write(f"{session.kind} {session.command_text!r} {session.username} {pty}\n")
    session.write(" ".join(f"{k}={v}" for k, v in sorted(session.env.items())) + "\n")
    session.write_stderr(f"stdin {len(session.stdin.read())}\n")
    return 5


def test_exec_handler_gets_command_env_streams_status(start: Any, keydir: Path) -> None:
    require("ssh")
    server = start(handler=report)
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_TIME": "C", "SECRET": "no"}
    extra = ["-o", "SendEnv=LANG LC_* SECRET"]
    result = _ssh(server, keydir, "some", "command", extra=extra, env=env, input=b"x" * 5000)
    assert result.returncode == 5
    assert result.stdout.decode().splitlines() == [
        f"exec 'some command' {USER} None",
        "LANG=C.UTF-8 LC_TIME=C",  # SECRET is not in accept_env
    ]
    assert result.stderr == b"stdin 5000\n"


def chat_line(session: Session) -> int:
    """shell: prompt, read one edited line on the pty, answer."""
    pty = session.pty
    assert pty is not None
    session.write(f"term={pty.term}\n")
    line = session.readline("name? ")
    session.write(f"hello [{line}]\n")
    return 0


def test_shell_handler_with_pty_and_line_editing(start: Any, keydir: Path) -> None:
    require("ssh")
    server = start(shell_handler=chat_line)
    env = {"PATH": "/usr/bin:/bin", "TERM": "vt220"}
    result = _ssh(server, keydir, extra=["-tt"], env=env, input=b"bobx\x7fby\r")
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr
    assert "term=vt220\r\n" in out
    assert "name? bobx\b \bby\r\n" in out  # echoed, with the Backspace erased on screen
    assert "hello [bobby]\r\n" in out  # \n became \r\n on the terminal


def test_window_change_reaches_the_handler(start: Any) -> None:
    def sizes(session: Session) -> int:
        session.window_changed.clear()
        session.write("ready\n")
        session.window_changed.wait()
        assert session.pty is not None
        session.write(f"now {session.pty.width}x{session.pty.height}\n")
        return 0

    server = start(shell_handler=sizes)

    def client() -> bytes:
        conn = paramiko_client(server.port)
        try:
            chan = conn.get_transport().open_session()
            chan.get_pty("xterm", 80, 24)
            chan.invoke_shell()
            stream = chan.makefile("rb")
            assert stream.readline() == b"ready\r\n"
            chan.resize_pty(132, 43)
            return bytes(stream.read())
        finally:
            conn.close()

    assert in_thread(client) == b"now 132x43\r\n"


def test_exit_signal(start: Any, keydir: Path) -> None:
    require("ssh")
    server = start(handler=lambda session: session.exit_signal("TERM", message="stopped"))
    result = _ssh(server, keydir, "x", extra=["-v"])
    assert result.returncode == 255
    assert b"rtype exit-signal" in result.stderr


def test_raising_and_hanging_handlers_affect_no_one_else(start: Any, keydir: Path) -> None:
    require("ssh")
    hanging = Event()

    def handler(session: Session) -> int:
        if session.command == b"hang":
            hanging.set()
            gevent.sleep(10_000)
        if session.command == b"raise":
            raise ValueError("bug in one session")
        session.write("ok\n")
        return 0

    server = start(handler=handler)
    argv = ssh_argv(server.port, keydir / "user_ed25519", "hang")
    stuck = gevent.subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        hanging.wait()
        assert _ssh(server, keydir, "raise").returncode == 1
        results = [_ssh(server, keydir, "fine") for _ in range(3)]
        assert [(r.returncode, r.stdout) for r in results] == [(0, b"ok\n")] * 3
    finally:
        stuck.kill()
        stuck.wait()


def test_oscommand_pty_size_follows_window_changes(start: Any) -> None:
    server = start(handler=OSCommand(shell="/bin/sh"))

    def client() -> bytes:
        conn = paramiko_client(server.port)
        try:
            chan = conn.get_transport().open_session()
            chan.get_pty("xterm", 100, 40)
            chan.exec_command("stty size; read x; stty size")
            stream = chan.makefile("rb")
            first = stream.readline()
            chan.resize_pty(120, 50)
            chan.sendall(b"go\n")
            rest = stream.read()
            return first + rest
        finally:
            conn.close()

    out = in_thread(client).replace(b"\r", b"")
    assert out.splitlines()[0] == b"40 100"
    assert out.splitlines()[-1] == b"50 120"


def test_oscommand_signal_and_exit_signal(start: Any) -> None:
    import asyncssh

    server = start(handler=OSCommand(shell="/bin/sh"))

    async def client() -> tuple[Any, Any]:
        async with asyncssh.connect(
            "127.0.0.1", server.port, username=USER, password=PASSWORD, known_hosts=None
        ) as conn:
            proc = await conn.create_process("echo started; exec sleep 60")
            assert await proc.stdout.readline() == "started\n"
            proc.send_signal("TERM")
            result = await proc.wait()
            return result.exit_status, result.exit_signal

    _, exit_signal = in_thread(asyncio.run, client())
    assert exit_signal is not None and exit_signal[0] == "TERM"


@pytest.mark.parametrize("name", ["INT", "QUIT", "HUP"])
def test_oscommand_signal_reaches_a_command_of_a_server_that_ignores_it(
    start: Any, name: str
) -> None:
    """A server started by ``cmd &`` (INT, QUIT ignored) or ``nohup`` (HUP): its
    commands still get the defaults, so a client's ``signal`` request works."""
    import asyncssh

    number = getattr(signal, f"SIG{name}")
    previous = signal.signal(number, signal.SIG_IGN)
    try:
        server = start(handler=OSCommand(shell="/bin/sh"))

        async def client() -> Any:
            async with asyncssh.connect(
                "127.0.0.1", server.port, username=USER, password=PASSWORD, known_hosts=None
            ) as conn:
                proc = await conn.create_process("echo started; exec sleep 60")
                assert await proc.stdout.readline() == "started\n"
                proc.send_signal(name)
                return (await proc.wait()).exit_signal

        exit_signal = in_thread(asyncio.run, client())
    finally:
        signal.signal(number, previous)
    assert exit_signal is not None and exit_signal[0] == name


def test_oscommand_hangs_up_when_the_client_vanishes(start: Any, keydir: Path) -> None:
    require("ssh")
    server = start(handler=OSCommand(shell="/bin/sh"))
    pids = []
    for extra in ([], ["-tt"]):  # pipes, then a pty
        argv = ssh_argv(
            server.port, keydir / "user_ed25519", "echo $$; exec sleep 600", extra=extra
        )
        client = gevent.subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        pids.append(int(client.stdout.readline()))
        client.kill()
        client.wait()
    with gevent.Timeout(30, AssertionError("the command outlived its client")):
        while any(Path(f"/proc/{pid}").exists() for pid in pids):
            gevent.sleep(0.05)


# -- the pytest plugin's fixture ----------------------------------------------------------


def test_fixture_serves_openssh_and_paramiko(geossh_server: GeosshTestServer) -> None:  # noqa: F811
    require("ssh")
    result = subprocess.run(  # plain blocking client code: the server has its own thread
        ["ssh", *geossh_server.ssh_options(), geossh_server.target, "echo from-$((40+2))"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"from-42\n"
    assert geossh_server.commands == ["echo from-$((40+2))"]

    import paramiko

    geossh_server.handler = lambda session: session.write("scripted\n") or 9
    client = paramiko.SSHClient()
    client.load_host_keys(str(geossh_server.known_hosts))
    client.connect(**geossh_server.connect_kwargs())
    try:
        _, out, _ = client.exec_command("anything")
        assert out.read() == b"scripted\n" and out.channel.recv_exit_status() == 9
        sftp = client.open_sftp()
        with sftp.open("hello.txt", "w") as f:
            f.write("via sftp")
    finally:
        client.close()
    assert (geossh_server.root / "hello.txt").read_text() == "via sftp"


def test_plugin_loads_in_another_project(tmp_path: Path) -> None:
    (tmp_path / "test_client.py").write_text(
        textwrap.dedent(
            """
            import paramiko

            def test_exec(geossh_server):
                geossh_server.handler = lambda session: session.write("plugin ok\\n")
                client = paramiko.SSHClient()
                client.load_host_keys(str(geossh_server.known_hosts))
                client.connect(**geossh_server.connect_kwargs())
                _, out, _ = client.exec_command("x")
                assert out.read() == b"plugin ok\\n"
                client.close()
            """
        )
    )
    installed = any(ep.name == "geossh" for ep in importlib.metadata.entry_points(group="pytest11"))
    args = [] if installed else ["-p", "geossh.pytest_plugin"]
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "test_client.py"]
    result = run(argv, cwd=str(tmp_path), env=python_env(), timeout=120)
    assert result.returncode == 0, result.stdout.decode()[-3000:]
    assert b"1 passed" in result.stdout
