"""Channels and sessions with OpenSSH's ``ssh`` client (RFC 4254).

exec with separate stdout/stderr and exit codes, a ``-tt`` shell on a real
local terminal (pty-req with decoded modes, window-change), SendEnv/SetEnv,
exit-signal, keepalives both ways, server-opened channels (agent
forwarding, a refused x11 open), the request-reply ordering guarantee, and
100 MiB through ``cat`` with re-keying.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import struct
from pathlib import Path
from typing import Any

import gevent
import gevent.os
import gevent.subprocess
import pytest

import geossh
from geossh._facade.channel import Channel
from geossh.proto.constants import MSG
from geossh.services.pty import set_winsize
from tests.channel_app import ChannelApp, app_of, use_channel_app
from tests.conftest import require
from tests.support import ServerHarness

pytestmark = pytest.mark.interop


@pytest.fixture
def app_server(server: ServerHarness) -> ServerHarness:
    require("ssh")
    return use_channel_app(server)


def _text(result: Any) -> str:
    return str(result.stderr.decode(errors="replace")[-3000:])


# -- exec -----------------------------------------------------------------------
def test_exec_separates_stdout_stderr_and_exit_codes(app_server: ServerHarness) -> None:
    ok = app_server.ssh_run("echo", "hello", "world")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, b"hello world\n", b"")
    failed = app_server.ssh_run("fail", "3")
    assert (failed.returncode, failed.stdout, failed.stderr) == (3, b"", b"failing\n")
    unknown = app_server.ssh_run("frobnicate")
    assert unknown.returncode == 127
    assert b"unknown command 'frobnicate'" in unknown.stderr
    assert ("exec", b"fail 3") in app_of(app_server, 1).requests


def test_exec_reads_stdin_until_eof(app_server: ServerHarness) -> None:
    data = os.urandom(300_000)
    result = app_server.ssh_run("sha256", input=data)
    assert result.returncode == 0, _text(result)
    assert result.stdout.decode().strip() == hashlib.sha256(data).hexdigest()


def test_sendenv_and_setenv(app_server: ServerHarness) -> None:
    env = dict(os.environ, GEOSSH_COLOUR="blue")
    argv = app_server.ssh_command(
        "env", "GEOSSH_COLOUR",
        options=["-o", "BatchMode=yes", "-o", "SendEnv=GEOSSH_COLOUR",
                 "-o", "SetEnv=GEOSSH_SHAPE=round"],
    )  # fmt: skip
    result = gevent.subprocess.run(argv, env=env, capture_output=True, timeout=40)
    assert result.returncode == 0, _text(result)
    assert result.stdout == b"blue\n"
    requests = app_of(app_server).requests
    assert ("env", b"GEOSSH_COLOUR", b"blue") in requests
    assert ("env", b"GEOSSH_SHAPE", b"round") in requests
    # paramiko's order: the env requests come before the exec that uses them.
    kinds = [r[0] for r in requests if r[0] in ("env", "exec")]
    assert kinds == ["env", "env", "exec"]


def test_exit_signal_reaches_ssh(app_server: ServerHarness) -> None:
    result = app_server.ssh_run("signal", "TERM", options=["-v"])
    # OpenSSH's ssh reads exit-signal but only records exit-status, so it
    # exits 255 ("no exit status") after logging the request.
    assert result.stdout == b"about to die\n"
    assert result.returncode == 255
    assert "rtype exit-signal reply 0" in _text(result)


# -- keepalives and server-sent requests ---------------------------------------
def test_server_alive_interval_keepalives_are_answered(app_server: ServerHarness) -> None:
    # ssh drops the connection if a keepalive goes unanswered for one interval.
    options = ["-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=1"]
    result = app_server.ssh_run("keepalives", "2", options=options)
    assert result.returncode == 0, _text(result)
    assert result.stdout == b"saw 2 keepalives\n"


def test_server_channel_request_with_want_reply(app_server: ServerHarness) -> None:
    result = app_server.ssh_run("chanping")
    assert result.returncode == 0, _text(result)
    assert result.stdout == b"reply=False\n"  # ssh answers CHANNEL_FAILURE to unknown requests


# -- channels the server opens ----------------------------------------------------
def test_agent_forwarding_opens_a_channel_to_the_client(app_server: ServerHarness) -> None:
    require("ssh-agent")
    key = app_server.keydir / "user_ecdsa"
    ssh = shlex.join(app_server.ssh_command("agent", options=["-o", "BatchMode=yes", "-A"]))
    script = f"ssh-add -q {shlex.quote(str(key))} && exec {ssh}"
    result = gevent.subprocess.run(
        ["ssh-agent", "sh", "-c", script], capture_output=True, timeout=40
    )
    assert result.returncode == 0, _text(result)
    assert result.stdout == b"agent answered type 12 with 1 key(s)\n"
    assert ("auth-agent-req",) in app_of(app_server).requests


def test_refused_server_open_raises_channel_exception(app_server: ServerHarness) -> None:
    result = app_server.ssh_run("openx11")
    assert result.returncode == 0, _text(result)
    assert result.stdout == b"ChannelException 1\n"  # administratively prohibited


# -- a real terminal ---------------------------------------------------------------
class _Terminal:
    """``ssh`` running on the slave side of a local pseudo-terminal."""

    def __init__(self, argv: list[str], columns: int, rows: int) -> None:
        self.master, slave = os.openpty()
        set_winsize(slave, columns, rows)
        env = dict(os.environ, TERM="xterm-256color")
        self.proc = gevent.subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        os.set_blocking(self.master, False)
        self.output = b""

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.output:
            try:
                chunk = gevent.os.nb_read(self.master, 4096)
            except OSError:  # EIO: every slave fd is closed
                chunk = b""
            if not chunk:
                raise AssertionError(f"terminal closed before {marker!r}: {self.output!r}")
            self.output += chunk
        return self.output

    def write(self, data: bytes) -> None:
        gevent.os.nb_write(self.master, data)

    def close(self) -> int:
        code = self.proc.wait(timeout=30)
        os.close(self.master)
        return int(code)


def test_tty_shell_with_pty_modes_and_window_change(app_server: ServerHarness) -> None:
    terminal = _Terminal(app_server.ssh_command("-tt", key="user_ed25519"), 100, 40)
    try:
        terminal.read_until(b"$ ")
        terminal.write(b"hello there\r")
        terminal.read_until(b"got: hello there")
        app = app_of(app_server)
        set_winsize(terminal.master, 132, 50)
        terminal.proc.send_signal(signal.SIGWINCH)
        app.wait_for(lambda: any(r[0] == "window-change" for r in app.requests))
        terminal.write(b"exit\r")
    finally:
        status = terminal.close()
    assert status == 0
    pty = next(r for r in app.requests if r[0] == "pty-req")
    assert pty[1:5] == (b"xterm-256color", 100, 40, 0)
    modes = pty[6]
    assert {"VINTR", "ECHO", "ICANON", "TTY_OP_ISPEED"} <= set(modes)
    assert modes["VINTR"] == 3  # ^C
    assert ("window-change", 132, 50, 0, 0) in app.requests
    assert [r[0] for r in app.requests if r[0] in ("pty-req", "shell")] == ["pty-req", "shell"]


# -- ordering: the reply goes out before data a woken greenlet sends ----------------
class _YieldingExec(ChannelApp):
    """An exec callback that wakes a sender, then yields before returning."""

    inline = False

    def check_channel_exec_request(self, channel: Channel, command: bytes) -> bool:
        core = channel.get_transport()._conn.transport
        original = core.send
        self.order: list[int] = []

        def record(payload: bytes) -> None:
            if payload[0] in (MSG.CHANNEL_DATA, MSG.CHANNEL_EOF, MSG.CHANNEL_CLOSE,
                              MSG.CHANNEL_SUCCESS, MSG.CHANNEL_REQUEST):  # fmt: skip
                self.order.append(payload[0])
            original(payload)

        core.send = record
        original_data = core.send_data

        def record_data(head: bytes, data: memoryview) -> None:
            self.order.append(head[0])
            original_data(head, data)

        core.send_data = record_data

        def work() -> None:
            channel.sendall(b"early bird\n")
            channel.send_exit_status(0)
            channel.close()

        if self.inline:  # sending from inside the callback must not deadlock
            channel.sendall(b"inline\n")
        gevent.spawn(work)
        for _ in range(20):
            gevent.sleep(0)  # a callback that yields (say, a cooperative database call)
        return True


@pytest.mark.parametrize("inline", [False, True])
def test_reply_precedes_data_from_a_woken_greenlet(server: ServerHarness, inline: bool) -> None:
    require("ssh")
    server.interface = type("App", (_YieldingExec,), {"inline": inline})
    result = server.ssh_run("go")
    assert result.returncode == 0, _text(result)
    order = server.servers[0].order  # type: ignore[attr-defined]
    if inline:
        assert result.stdout == b"inline\nearly bird\n"
        assert order[0] == MSG.CHANNEL_DATA  # the callback's own data: before its reply
        order = order[1:]
    else:
        assert result.stdout == b"early bird\n"
    assert order[0] == MSG.CHANNEL_SUCCESS, order
    assert order[1:] == [MSG.CHANNEL_DATA, MSG.CHANNEL_REQUEST, MSG.CHANNEL_EOF,
                         MSG.CHANNEL_CLOSE]  # fmt: skip


# -- bulk data ------------------------------------------------------------------------
def _random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with open(path, "wb") as out:
        for index in range(size >> 20):
            chunk = struct.pack(">Q", index) + block[8:]
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _pipe_through(server: ServerHarness, path: Path, *options: str) -> tuple[str, str]:
    """``ssh host cat < path | sha256sum``; returns (digest, ssh's stderr)."""
    ssh = shlex.join(server.ssh_command("cat", options=["-o", "BatchMode=yes", *options]))
    errors = path.with_suffix(".err")
    script = f"{ssh} < {shlex.quote(str(path))} 2> {shlex.quote(str(errors))} | sha256sum"
    result = gevent.subprocess.run(["bash", "-o", "pipefail", "-c", script],
                                   capture_output=True, timeout=120)  # fmt: skip
    stderr = errors.read_text(errors="replace")
    assert result.returncode == 0, stderr[-3000:]
    return result.stdout.decode().split()[0], stderr


def test_100_mib_through_cat_both_ways(app_server: ServerHarness, tmp_path: Path) -> None:
    path = tmp_path / "blob"
    expected = _random_file(path, 100 << 20)
    digest, _ = _pipe_through(app_server, path)
    assert digest == expected
    transport = app_server.transports[0]
    assert transport._pump is not None
    assert transport._pump.bytes_in > 100 << 20 and transport._pump.bytes_out > 100 << 20


def test_client_rekey_limit_during_transfer(app_server: ServerHarness, tmp_path: Path) -> None:
    path = tmp_path / "blob"
    expected = _random_file(path, 16 << 20)
    digest, stderr = _pipe_through(app_server, path, "-v", "-o", "RekeyLimit=1M")
    assert digest == expected
    assert stderr.count("SSH2_MSG_NEWKEYS received") >= 8


def test_server_rekey_during_transfer(app_server: ServerHarness, tmp_path: Path) -> None:
    def rekey_often(transport: geossh.Transport) -> None:
        transport.rekey_bytes = 1 << 20

    configure = app_server.configure
    app_server.configure = lambda t: (configure(t), rekey_often(t))  # type: ignore[func-returns-value]
    path = tmp_path / "blob"
    expected = _random_file(path, 16 << 20)
    digest, stderr = _pipe_through(app_server, path, "-v")
    assert digest == expected
    assert stderr.count("SSH2_MSG_NEWKEYS received") >= 8


# -- many sessions over one connection (ControlMaster) --------------------------------
def test_multiplexed_sessions_share_one_connection(
    app_server: ServerHarness, tmp_path: Path
) -> None:
    control = ["-o", f"ControlPath={tmp_path / 'ctl'}"]
    mux = ["-o", "BatchMode=yes", *control, "-o", "ControlMaster=auto", "-o", "ControlPersist=60"]
    try:
        first = app_server.ssh_run("echo", "0", options=mux)  # leaves a master behind
        assert first.returncode == 0, _text(first)
        jobs = [gevent.spawn(app_server.ssh_run, "echo", str(n), options=mux) for n in range(1, 8)]
        gevent.joinall(jobs, raise_error=True)
        outputs = sorted([first.stdout] + [job.value.stdout for job in jobs])
        assert outputs == sorted(f"{n}\n".encode() for n in range(8))
        assert len(app_server.transports) == 1  # all eight rode the master's connection
        opens = [r for r in app_of(app_server).requests if r[0] == "open"]
        assert len(opens) == 8
    finally:
        app_server.ssh_run(options=[*control, "-O", "exit"])
