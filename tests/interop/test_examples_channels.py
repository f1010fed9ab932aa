"""The channel examples run as real servers (subprocesses) against real clients.

``examples/demo_server.py`` (paramiko's demo, ported) with paramiko's client
and OpenSSH; ``examples/exec_server.py`` (real commands through pipes or a
pty) with OpenSSH and asyncssh: stdout/stderr, exit codes, exit-signal,
signals, env, terminal modes and window size.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gevent.subprocess
import paramiko
import pytest

from tests.conftest import require
from tests.support import in_thread

pytestmark = pytest.mark.interop
REPO = Path(__file__).resolve().parents[2]


def _as_background_job() -> None:
    """SIGINT and SIGQUIT ignored, as for ``server &`` in a script (exec keeps them)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


@contextmanager
def _example(name: str, *args: str) -> Iterator[int]:
    """Run ``examples/<name>`` on a free port, started as a background job; yield the port.

    Its commands must still get the default signals: a ``signal`` request for
    INT reaches a command that would otherwise inherit SIG_IGN.
    """
    env = dict(os.environ, PYTHONPATH=str(REPO), SHELL="/bin/sh")
    proc = gevent.subprocess.Popen(
        [sys.executable, str(REPO / "examples" / name), "--port", "0", *args],
        stdout=gevent.subprocess.PIPE, stderr=gevent.subprocess.STDOUT, env=env,
        preexec_fn=_as_background_job,
    )  # fmt: skip
    try:
        seen = b""
        while b"Listening on" not in seen:
            line = proc.stdout.readline()
            assert line, f"{name} exited: {seen.decode(errors='replace')}"
            seen += line
        yield int(seen.split(b"Listening on ")[1].split(b":")[1])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


def _ssh(port: int, keydir: Path, *remote: str, user: str = "me",
         options: tuple[str, ...] = (), **kwargs: Any) -> Any:  # fmt: skip
    argv = ["ssh", "-F", "/dev/null", "-p", str(port), "-i", str(keydir / "user_ed25519"),
            "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
            *options, f"{user}@127.0.0.1", *remote]  # fmt: skip
    return gevent.subprocess.run(argv, capture_output=True, timeout=40, **kwargs)


# -- demo_server.py -----------------------------------------------------------------
def test_demo_server_with_paramiko_shell(keydir: Path) -> None:
    def client(port: int) -> bytes:
        transport = paramiko.Transport(("127.0.0.1", port))
        try:
            transport.connect(username="robey", password="foo")
            chan = transport.open_session()
            chan.get_pty()
            chan.invoke_shell()
            seen = b""
            while b"Username: " not in seen:
                seen += chan.recv(1024)
            chan.sendall(b"alice\r")
            while data := chan.recv(1024):
                seen += data
            return seen
        finally:
            transport.close()

    with _example("demo_server.py", "--host-key", str(keydir / "host_rsa")) as port:
        seen = in_thread(client, port)
    assert b"Welcome to my dorky little BBS!" in seen
    assert seen.endswith(b"I don't like you, alice.\r\n")


def test_demo_server_with_openssh_tty(keydir: Path) -> None:
    require("ssh")
    key = str(keydir / "user_ed25519.pub")
    with _example("demo_server.py", "--authorized-key", key) as port:
        result = _ssh(port, keydir, user="robey", options=("-tt",), input=b"bob\n")
    assert b"Happy birthday to Robot Dave!" in result.stdout
    assert b"I don't like you, bob." in result.stdout


# -- exec_server.py -------------------------------------------------------------------
@pytest.fixture
def exec_port(keydir: Path) -> Iterator[int]:
    require("ssh")
    args = ("--authorized-keys", str(keydir / "user_ed25519.pub"), "--accept-env", "GEOSSH_*")
    with _example("exec_server.py", *args) as port:
        yield port


def test_exec_server_streams_and_exit_code(exec_port: int, keydir: Path) -> None:
    result = _ssh(exec_port, keydir, "echo out; echo err >&2; exit 3")
    assert (result.stdout, result.stderr, result.returncode) == (b"out\n", b"err\n", 3)


def test_exec_server_stdin_to_a_real_command(exec_port: int, keydir: Path) -> None:
    data = os.urandom(5 << 20)
    result = _ssh(exec_port, keydir, "sha256sum", input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()


def test_exec_server_accepts_only_listed_env(exec_port: int, keydir: Path) -> None:
    env = dict(os.environ, GEOSSH_EXAMPLE="fine", OTHER_VAR="nope")
    options = ("-o", "SendEnv=GEOSSH_EXAMPLE OTHER_VAR")
    result = _ssh(exec_port, keydir, 'echo "$GEOSSH_EXAMPLE/${OTHER_VAR:-unset}"',
                  options=options, env=env)  # fmt: skip
    assert result.stdout == b"fine/unset\n"


def test_exec_server_pty_for_ssh_tt(exec_port: int, keydir: Path) -> None:
    result = _ssh(exec_port, keydir, "tty; test -t 0 && echo is-a-tty", options=("-tt",))
    assert result.returncode == 0
    assert result.stdout.startswith(b"/dev/pts/") and b"is-a-tty\r\n" in result.stdout


def _asyncssh(port: int, keydir: Path, body: Any) -> Any:
    asyncssh = pytest.importorskip("asyncssh")

    async def main() -> Any:
        async with asyncssh.connect(
            "127.0.0.1", port, username="me", known_hosts=None, agent_path=None,
            client_keys=[str(keydir / "user_ed25519")],
        ) as conn:  # fmt: skip
            return await body(conn, asyncssh)

    return in_thread(lambda: asyncio.run(main()))


def test_exec_server_terminal_modes_size_and_resize(exec_port: int, keydir: Path) -> None:
    async def body(conn: Any, asyncssh: Any) -> str:
        proc = await conn.create_process(
            "stty size; stty -a | tr ' ' '\\n' | grep -x -- -echo; read go; stty size",
            term_type="xterm", term_size=(100, 40), term_modes={asyncssh.PTY_ECHO: 0},
        )  # fmt: skip
        first = await proc.stdout.readline()
        proc.change_terminal_size(120, 50)
        proc.stdin.write("go\n")
        rest = await proc.stdout.read()
        await proc.wait()
        return str(first + rest)

    lines = _asyncssh(exec_port, keydir, body).split()
    assert lines == ["40", "100", "-echo", "50", "120"]


def test_exec_server_exit_signal_and_signal_requests(exec_port: int, keydir: Path) -> None:
    async def body(conn: Any, asyncssh: Any) -> tuple[Any, Any]:
        killed = await conn.run("kill -TERM $$")
        proc = await conn.create_process("echo started; exec sleep 30")
        await proc.stdout.readline()
        proc.send_signal("INT")
        await proc.wait()
        return killed.exit_signal, proc.exit_signal

    killed, interrupted = _asyncssh(exec_port, keydir, body)
    assert killed[0] == "TERM"
    assert interrupted[0] == "INT"


def test_exec_server_interactive_shell_with_paramiko(exec_port: int, keydir: Path) -> None:
    def client(port: int) -> bytes:
        key = paramiko.Ed25519Key.from_private_key_file(str(keydir / "user_ed25519"))
        transport = paramiko.Transport(("127.0.0.1", port))
        try:
            transport.connect(username="me", pkey=key)
            chan = transport.open_session()
            chan.get_pty("dumb", 80, 24)
            chan.invoke_shell()
            chan.sendall(b"echo $((6 * 7)); exit 5\n")
            seen = b""
            while data := chan.recv(1024):
                seen += data
            return seen + b"status=%d" % chan.recv_exit_status()
        finally:
            transport.close()

    out = in_thread(client, exec_port)
    echoed, _, after = out.partition(b"exit 5")  # the terminal echoes the typed line
    assert b"42\r\n" in after and b"42" not in echoed
    assert out.endswith(b"status=5")
