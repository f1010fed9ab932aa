"""Channels and sessions with paramiko's client: exec_command, invoke_shell,
resize_pty, invoke_subsystem, env, x11 and agent requests, many channels on
one connection (a stalled one never stalls the others), the channel cap, and
the server-side Channel API (files, timeouts, select) driven by a real peer.

paramiko's client is blocking, so each scenario runs in gevent's thread pool
(``in_thread``) while the geossh server keeps serving in the hub.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import paramiko
import pytest

import geossh
from tests.channel_app import app_of, use_channel_app
from tests.support import PASSWORD, USER, ServerHarness, in_thread, pattern_block

pytestmark = pytest.mark.interop
T = TypeVar("T")


@contextmanager
def _client(port: int) -> Iterator[paramiko.Transport]:
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        transport.connect(username=USER, password=PASSWORD)
        yield transport
    finally:
        transport.close()


def _with_client(server: ServerHarness, body: Callable[[paramiko.Transport], T]) -> T:
    use_channel_app(server)

    def run() -> T:
        with _client(server.port) as transport:
            return body(transport)

    return in_thread(run)


def _drain(chan: paramiko.Channel, stderr: bool = False) -> bytes:
    read = chan.recv_stderr if stderr else chan.recv
    parts = []
    while data := read(65536):
        parts.append(data)
    return b"".join(parts)


def _exec(transport: paramiko.Transport, command: bytes) -> tuple[bytes, bytes, int]:
    chan = transport.open_session()
    chan.exec_command(command)
    out = _drain(chan)
    return out, _drain(chan, stderr=True), chan.recv_exit_status()


# -- exec, env ----------------------------------------------------------------------
def test_exec_command_streams_and_exit_codes(server: ServerHarness) -> None:
    def body(transport: paramiko.Transport) -> list[tuple[bytes, bytes, int]]:
        return [_exec(transport, b"echo a b"), _exec(transport, b"fail 7"),
                _exec(transport, b"nosuch")]  # fmt: skip

    echo, fail, unknown = _with_client(server, body)
    assert echo == (b"a b\n", b"", 0)
    assert fail == (b"", b"failing\n", 7)
    assert unknown[2] == 127


def test_environment_and_exec(server: ServerHarness) -> None:
    def body(transport: paramiko.Transport) -> bytes:
        chan = transport.open_session()
        chan.update_environment({"GEOSSH_A": "1", "GEOSSH_B": "two words"})
        chan.exec_command("env GEOSSH_B")
        return _drain(chan)

    assert _with_client(server, body) == b"two words\n"
    requests = app_of(server).requests
    assert ("env", b"GEOSSH_A", b"1") in requests
    assert ("env", b"GEOSSH_B", b"two words") in requests


# -- shell, pty, subsystem ---------------------------------------------------------
def _read_until(chan: paramiko.Channel, marker: bytes) -> bytes:
    seen = b""
    while marker not in seen:
        data = chan.recv(1024)
        assert data, seen
        seen += data
    return seen


def test_invoke_shell_with_pty_and_resize(server: ServerHarness) -> None:
    def body(transport: paramiko.Transport) -> tuple[bytes, int]:
        chan = transport.open_session()
        chan.get_pty("vt220", 90, 30, 900, 600)
        chan.invoke_shell()
        seen = _read_until(chan, b"$ ")
        chan.sendall(b"first line\n")
        seen += _read_until(chan, b"got: first line")
        chan.resize_pty(120, 50)
        chan.sendall(b"exit\n")
        _drain(chan)
        return seen, chan.recv_exit_status()

    seen, status = _with_client(server, body)
    assert b"welcome" in seen and status == 0
    requests = app_of(server).requests
    assert ("pty-req", b"vt220", 90, 30, 900, 600, {}) in requests  # paramiko sends no modes
    assert ("window-change", 120, 50, 0, 0) in requests


def test_invoke_subsystem(server: ServerHarness) -> None:
    def body(transport: paramiko.Transport) -> tuple[bytes, int, str]:
        chan = transport.open_session()
        chan.invoke_subsystem("echo")
        chan.sendall(b"ping " * 1000)
        chan.shutdown_write()
        out = _drain(chan)
        status = chan.recv_exit_status()
        missing = transport.open_session()
        try:
            missing.invoke_subsystem("nonexistent")
            error = "accepted"
        except paramiko.SSHException as exc:
            error = type(exc).__name__
        return out, status, error

    out, status, error = _with_client(server, body)
    assert out == b"echo subsystem ready\n" + b"ping " * 1000
    assert status == 0
    assert error == "SSHException"
    assert ("subsystem", "nonexistent") in app_of(server).requests


def test_x11_and_agent_requests_reach_the_application(server: ServerHarness) -> None:
    def body(transport: paramiko.Transport) -> bytes:
        chan = transport.open_session()
        chan.request_x11(screen_number=2, auth_protocol="MIT-MAGIC-COOKIE-1",
                         auth_cookie="0123abcd", single_connection=True)  # fmt: skip
        chan.request_forward_agent(lambda channel: None)
        chan.exec_command("echo done")
        return _drain(chan)

    assert _with_client(server, body) == b"done\n"
    requests = app_of(server).requests
    assert ("x11-req", True, "MIT-MAGIC-COOKIE-1", b"0123abcd", 2) in requests
    assert ("auth-agent-req",) in requests


# -- many channels -------------------------------------------------------------------
def test_stalled_reader_does_not_stall_a_sibling(server: ServerHarness) -> None:
    """The client never reads channel A: its server sender blocks, B keeps flowing."""
    size = 16 << 20

    def body(transport: paramiko.Transport) -> tuple[int, bytes, str]:
        stalled = transport.open_session()
        stalled.exec_command(f"generate {size}")
        while len(stalled.in_buffer) < stalled.in_window_size:  # the whole window, unread
            time.sleep(0.005)  # polls a condition; no adjust can come while we do not read
        flowing = transport.open_session()
        flowing.exec_command("sha256")
        payload = os.urandom(8 << 20)
        flowing.sendall(payload)
        flowing.shutdown_write()
        digest = _drain(flowing).decode().strip()
        window = server_window(stalled.remote_chanid)
        data = _drain(stalled)
        ok = data == pattern_block(size)
        return window, digest.encode(), f"{ok} {hashlib.sha256(payload).hexdigest()}"

    def server_window(chanid: int) -> int:
        return int(server.transports[0]._conn.channels.send_window(chanid))

    window, digest, check = _with_client(server, body)
    ok, expected = check.split()
    assert window == 0  # the stalled channel's sender was waiting for window
    assert digest.decode() == expected
    assert ok == "True"


def test_unread_input_is_bounded_by_the_window(server: ServerHarness) -> None:
    """The server application does not read channel A; the client cannot overrun it."""

    def body(transport: paramiko.Transport) -> tuple[int, int, bytes, bytes]:
        stalled = transport.open_session()
        stalled.exec_command("stall")
        stalled.settimeout(0.0)
        block, sent = bytes(32768), 0
        while True:
            try:
                sent += stalled.send(block)
            except TimeoutError:
                break
        flowing = transport.open_session()
        flowing.exec_command("sha256")
        payload = os.urandom(8 << 20)
        flowing.sendall(payload)
        flowing.shutdown_write()
        digest = _drain(flowing).decode().strip()
        buffered = len(server.transports[0]._channels[stalled.remote_chanid].in_buffer)
        app_of(server).release.set()
        stalled.settimeout(None)
        stalled.shutdown_write()
        return sent, buffered, _drain(stalled), digest == hashlib.sha256(payload).hexdigest()

    sent, buffered, report, digest_ok = _with_client(server, body)
    assert sent == buffered == geossh.common.DEFAULT_WINDOW_SIZE
    assert report == f"read {sent}\n".encode()
    assert digest_ok


def test_channel_cap_refuses_with_resource_shortage(server: ServerHarness) -> None:
    server.configure = lambda transport: setattr(transport, "max_channels", 3)

    def body(transport: paramiko.Transport) -> tuple[int, bytes]:
        chans = [transport.open_session() for _ in range(3)]
        try:
            transport.open_session()
            code = 0
        except paramiko.ChannelException as exc:
            code = exc.code
        # The client closes first, so its CLOSE leaves before the next OPEN.
        # (Closing after the server's CLOSE would race: paramiko answers that
        # CLOSE from its transport thread, and the OPEN may overtake it.)
        chans[0].close()
        return code, _exec(transport, b"echo again")[0]

    code, again = _with_client(server, body)
    assert code == paramiko.OPEN_FAILED_RESOURCE_SHORTAGE
    assert again == b"again\n"


def test_other_channel_kinds(server: ServerHarness) -> None:
    def body(transport: paramiko.Transport) -> tuple[int, str]:
        try:
            transport.open_channel("x11", src_addr=("127.0.0.1", 5))
            code = 0
        except paramiko.ChannelException as exc:
            code = exc.code
        custom = transport.open_channel("geossh-test@example.com")
        try:
            custom.exec_command("echo no")  # a session request on a non-session channel
            result = "accepted"
        except paramiko.SSHException:
            result = "refused"
        return code, result

    code, result = _with_client(server, body)
    assert code == paramiko.OPEN_FAILED_UNKNOWN_CHANNEL_TYPE
    assert result == "refused"
    assert ("exec", b"echo no") not in app_of(server).requests


def test_accept_returns_channels_in_order(server: ServerHarness) -> None:
    def body(transport: paramiko.Transport) -> tuple[list[int], bytes, bytes]:
        chans = [transport.open_session() for _ in range(3)]
        out, _, _ = _exec(transport, b"acceptq")
        refused, _, _ = _exec(transport, b"opensession")
        return [c.remote_chanid for c in chans], out, refused

    ids, out, refused = _with_client(server, body)
    assert out == f"accepted {[*ids, ids[-1] + 1]} then None\n".encode()
    # paramiko's client refuses session channels a server opens.
    assert refused == b"ChannelException 1\n"


# -- the server-side Channel API -----------------------------------------------------
def test_server_files_text_lines_stderr_and_stdin_eof(server: ServerHarness) -> None:
    def body(transport: paramiko.Transport) -> tuple[bytes, bytes, int]:
        chan = transport.open_session()
        chan.exec_command("lines")
        chan.sendall("one\r\ntwo\rthree\nvier é\n".encode())
        chan.shutdown_write()
        return _drain(chan), _drain(chan, stderr=True), chan.recv_exit_status()

    out, err, status = _with_client(server, body)
    assert out == "ONE\nTWO\nTHREE\nVIER É\n".encode()
    assert (err, status) == (b"4 lines\n", 0)


def test_server_binary_readline_and_read(server: ServerHarness) -> None:
    blob = os.urandom(1 << 20)

    def body(transport: paramiko.Transport) -> bytes:
        chan = transport.open_session()
        chan.exec_command("binlines")
        chan.sendall(b"first\nabcdefgh" + blob)
        chan.shutdown_write()
        return _drain(chan)

    out = _with_client(server, body)
    expected = (b"first\n", b"abcd", len(blob) + 4, hashlib.sha256(b"efgh" + blob).hexdigest())
    assert out == repr(expected).encode() + b"\n"


def test_server_channel_flags_follow_the_peer(server: ServerHarness) -> None:
    """``active``/``closed``/``eof_*`` on the server follow EOF and CLOSE as paramiko's do."""

    def body(transport: paramiko.Transport) -> list[bytes]:
        chan = transport.open_session()
        chan.exec_command("states")
        opened = _read_until(chan, b"\n")
        chan.shutdown_write()
        after_eof = _drain(chan)  # ends at the server's EOF
        chan.close()
        return [opened, after_eof, _exec(transport, b"laststate")[0]]

    opened, after_eof, last = _with_client(server, body)
    assert opened == b"active=True closed=False eof_received=False eof_sent=False\n"
    assert after_eof == b"active=True closed=False eof_received=True eof_sent=False\n"
    assert last == (
        b"active=True closed=False eof_received=True eof_sent=True"
        b" | active=True closed=True eof_received=True eof_sent=True\n"
    )


def test_server_timeouts_and_blocking(server: ServerHarness) -> None:
    def body(transport: paramiko.Transport) -> bytes:
        chan = transport.open_session()
        chan.exec_command("timeouts")
        _read_until(chan, b"ready\n")
        chan.sendall(b"ping")
        return _drain(chan)

    assert _with_client(server, body) == b"timeout 0.0 None 0.0 ping (False, False, True)\n"


def test_server_fileno_works_with_gevent_select(server: ServerHarness) -> None:
    def body(transport: paramiko.Transport) -> bytes:
        chan = transport.open_session()
        chan.exec_command("select")
        _read_until(chan, b"ready\n")
        chan.sendall(b"ping")
        seen = _read_until(chan, b"]\n")
        chan.shutdown_write()
        return seen + _drain(chan)

    out = _with_client(server, body)
    assert out == b"drained [0, 1, 0]\nselect [0, 1, 0, 1, 0]\n"


def test_server_reads_client_stderr_and_combines_it(server: ServerHarness) -> None:
    def body(transport: paramiko.Transport) -> bytes:
        chan = transport.open_session()
        chan.exec_command("stderrin")
        chan.send_stderr(b"err1")
        _read_until(chan, b"ok\n")
        chan.send_stderr(b"err2")
        chan.sendall(b"out")
        chan.shutdown_write()
        return _drain(chan)

    assert _with_client(server, body) == b"(b'err1', False, b'err2out')\n"


def test_signal_request_reaches_the_application(server: ServerHarness) -> None:
    def body(transport: paramiko.Transport) -> bytes:
        chan = transport.open_session()
        chan.exec_command("waitsignal")
        _read_until(chan, b"waiting\n")
        message = paramiko.Message()
        message.add_byte(paramiko.common.cMSG_CHANNEL_REQUEST)
        message.add_int(chan.remote_chanid)
        message.add_string("signal")
        message.add_boolean(False)
        message.add_string("INT")
        transport._send_user_message(message)
        return _drain(chan)

    assert _with_client(server, body) == b"got INT\n"


def test_exit_status_matches_paramiko_semantics(server: ServerHarness) -> None:
    def body(transport: paramiko.Transport) -> list[Any]:
        chan = transport.open_session()
        chan.exec_command("fail 255")
        _drain(chan)
        return [chan.recv_exit_status(), chan.exit_status_ready()]

    assert _with_client(server, body) == [255, True]


def test_a_client_that_starts_adjusting_late_still_gets_everything(server: ServerHarness) -> None:
    """The send-ahead limit must never deadlock a client whose adjust threshold grows.

    paramiko's client first adjusts at a tenth of its window (the server learns
    a ~200 KiB threshold and limits itself to 512 KiB in flight); then the
    client waits for 1.5 MiB consumed before adjusting again. Only the
    server's lift of the limit (no adjust for a while) lets the rest through.
    """
    from geossh.proto.window import SEND_AHEAD_LIMIT

    size = 8 << 20

    def body(transport: paramiko.Transport) -> tuple[bool, int]:
        chan = transport.open_session()
        chan.settimeout(30)  # a deadlock fails the test instead of hanging it
        chan.exec_command(f"generate {size}")
        parts, received = [], 0
        while received < size:
            data = chan.recv(65536)
            if not data:
                break
            parts.append(data)
            received += len(data)
            if received >= 1 << 20:  # a few adjusts in: now a threshold above the limit
                chan.in_window_threshold = chan.in_window_size * 3 // 4
        expected = pattern_block(size)
        return b"".join(parts) == expected, chan.recv_exit_status()

    whole, status = _with_client(server, body)
    assert server.transports[0]._conn.channels.send_ahead == SEND_AHEAD_LIMIT
    assert whole and status == 0
