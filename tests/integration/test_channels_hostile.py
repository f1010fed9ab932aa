"""Bad input on the connection protocol, over 127.0.0.1 with a misbehaving client.

paramiko's client authenticates and opens channels normally, then injects
raw connection-protocol payloads (``_send_user_message``). Each case is
answered as OpenSSH answers it: a DISCONNECT(PROTOCOL_ERROR) with a log line,
or a failure reply after which the connection keeps working. Memory stays
bounded for a client that stops reading the socket and for one that stops
granting window.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import select
import struct
import threading
from collections.abc import Callable
from typing import Any

import gevent
import paramiko
import pytest

import geossh
from geossh.errors import RemoteProtocolError
from geossh.proto import wire
from geossh.proto.constants import MSG
from geossh.services.pty import encode_modes
from tests.channel_app import ChannelApp, app_of, use_channel_app
from tests.support import PASSWORD, USER, ServerHarness, in_thread, pattern_block


def _inject(transport: paramiko.Transport, payload: bytes) -> None:
    transport._send_user_message(paramiko.Message(payload))


def _request(chan: paramiko.Channel, kind: str, body: bytes, want_reply: bool = True) -> bytes:
    head = struct.pack(">BI", MSG.CHANNEL_REQUEST, chan.remote_chanid)
    return head + wire.string(kind) + wire.boolean(want_reply) + body


def _session(server: ServerHarness, body: Callable[[paramiko.Transport], Any]) -> Any:
    use_channel_app(server)

    def run() -> Any:
        transport = paramiko.Transport(("127.0.0.1", server.port))
        try:
            transport.connect(username=USER, password=PASSWORD)
            return body(transport)
        finally:
            transport.close()

    return in_thread(run)


def _echo_works(transport: paramiko.Transport) -> bytes:
    chan = transport.open_session()
    chan.exec_command("echo still here")
    out = b""
    while data := chan.recv(1024):
        out += data
    return out


# -- violations that end the connection ---------------------------------------
def _disconnected_by(server: ServerHarness, attack: Callable[[paramiko.Transport], None]) -> str:
    def body(transport: paramiko.Transport) -> bool:
        attack(transport)
        transport.join(20)  # paramiko's reader ends at the server's DISCONNECT
        return bool(transport.is_active())

    still_active = _session(server, body)
    ours = server.transports[0]
    ours.join(20)
    assert not still_active and not ours.is_active()
    error = ours.saved_exception
    assert isinstance(error, RemoteProtocolError)
    assert error.code == geossh.proto.constants.DisconnectReason.PROTOCOL_ERROR
    return str(error)


def test_data_beyond_the_window(server: ServerHarness, caplog: pytest.LogCaptureFixture) -> None:
    server.configure = lambda transport: setattr(transport, "default_window_size", 65536)

    def attack(transport: paramiko.Transport) -> None:
        chan = transport.open_session()
        chan.exec_command("stall")
        for _ in range(3):  # 3 x 32 KiB into a 64 KiB window the application never drains
            head = struct.pack(">BII", MSG.CHANNEL_DATA, chan.remote_chanid, 32768)
            _inject(transport, head + bytes(32768))

    caplog.set_level(logging.WARNING, logger="geossh")
    assert "beyond a window" in _disconnected_by(server, attack)
    assert "Disconnecting: channel" in caplog.text and "(reason 2)" in caplog.text


def test_window_adjust_overflowing_2_32(server: ServerHarness) -> None:
    def attack(transport: paramiko.Transport) -> None:
        chan = transport.open_session()
        adjust = struct.pack(">BII", MSG.CHANNEL_WINDOW_ADJUST, chan.remote_chanid, 0xFFFFFFFF)
        _inject(transport, adjust)

    assert "overflows" in _disconnected_by(server, attack)


@pytest.mark.parametrize("msg", [MSG.CHANNEL_DATA, MSG.CHANNEL_EOF, MSG.CHANNEL_CLOSE])
def test_messages_for_unknown_channels(server: ServerHarness, msg: MSG) -> None:
    def attack(transport: paramiko.Transport) -> None:
        transport.open_session()
        body = wire.string(b"boo") if msg == MSG.CHANNEL_DATA else b""
        _inject(transport, struct.pack(">BI", msg, 4242) + body)

    assert "nonexistent channel 4242" in _disconnected_by(server, attack)


def test_data_for_a_channel_closed_both_ways(server: ServerHarness) -> None:
    def attack(transport: paramiko.Transport) -> None:
        chan = transport.open_session()
        chan.exec_command("echo bye")
        while chan.recv(1024):
            pass
        chan.recv_exit_status()
        chan.close()  # the server closed first: our CLOSE frees the id (TCP keeps the order)
        # paramiko's reader thread may answer the server's CLOSE itself, after
        # close() returned; it does so before it reads the next message, so
        # once this reply is read our CLOSE is on the wire before the data.
        transport.global_request("keepalive@openssh.com", wait=True)
        _inject(
            transport, struct.pack(">BI", MSG.CHANNEL_DATA, chan.remote_chanid) + wire.string(b"x")
        )

    assert "nonexistent channel" in _disconnected_by(server, attack)


def test_channel_data_with_a_lying_length(server: ServerHarness) -> None:
    def attack(transport: paramiko.Transport) -> None:
        chan = transport.open_session()
        _inject(transport, struct.pack(">BII", MSG.CHANNEL_DATA, chan.remote_chanid, 100) + b"xy")

    assert "length" in _disconnected_by(server, attack)


# -- violations answered with a failure or ignored -----------------------------
def test_data_after_eof_is_dropped_and_logged(
    server: ServerHarness, caplog: pytest.LogCaptureFixture
) -> None:
    def body(transport: paramiko.Transport) -> tuple[bytes, bytes]:
        chan = transport.open_session()
        chan.exec_command("stall")
        chan.sendall(b"counted")
        chan.shutdown_write()
        _inject(transport, struct.pack(">BI", MSG.CHANNEL_DATA, chan.remote_chanid)
                + wire.string(b"after EOF"))  # fmt: skip
        alive = _echo_works(transport)
        app_of(server).release.set()
        report = b""
        while data := chan.recv(1024):
            report += data
        return alive, report

    alive, report = _session(server, body)
    assert alive == b"still here\n"
    assert report == b"read 7\n"
    assert "data after EOF" in caplog.text


def test_malformed_pty_modes_get_a_failure_reply(
    server: ServerHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="geossh")

    def body(transport: paramiko.Transport) -> tuple[bool, bytes]:
        chan = transport.open_session()
        pty = wire.string("vt100") + struct.pack(">IIII", 80, 24, 0, 0)
        _inject(transport, _request(chan, "pty-req", pty + wire.string(b"\x35\x00\x00")))
        chan.event.wait(20)  # paramiko closes a channel whose request failed
        return chan.closed, _echo_works(transport)

    closed, alive = _session(server, body)
    assert closed and alive == b"still here\n"
    assert not any(r[0] == "pty-req" for r in app_of(server).requests)
    assert "Malformed pty-req request: bad terminal modes" in caplog.text


def test_good_pty_modes_reach_the_application(server: ServerHarness) -> None:
    def body(transport: paramiko.Transport) -> bytes:
        chan = transport.open_session()
        modes = encode_modes({"ECHO": 0, "VERASE": 127, 150: 1})
        pty = wire.string("vt100") + struct.pack(">IIII", 80, 24, 0, 0) + wire.string(modes)
        _inject(transport, _request(chan, "pty-req", pty, want_reply=False))
        chan.exec_command("echo ok")
        return chan.makefile("rb").read()

    assert _session(server, body) == b"ok\n"
    pty = next(r for r in app_of(server).requests if r[0] == "pty-req")
    assert pty[6] == {"ECHO": 0, "VERASE": 127, 150: 1}


def test_malformed_and_misplaced_requests(server: ServerHarness) -> None:
    def body(transport: paramiko.Transport) -> list[bool]:
        results = []
        for kind, request_body, chan_kind in [
            ("exec", b"\x00\x00\x10", "session"),  # truncated string
            ("window-change", b"\x00", "session"),
            ("exec", wire.string("echo x"), "geossh-test@example.com"),  # not a session
            ("shell", b"", "geossh-test@example.com"),
            ("no-such-request@example.com", b"", "session"),
        ]:
            chan = transport.open_channel(chan_kind)
            _inject(transport, _request(chan, kind, request_body))
            chan.event.wait(20)
            results.append(bool(chan.closed))
        return [*results, _echo_works(transport) == b"still here\n"]

    assert _session(server, body) == [True] * 6


class _RaisingApp(ChannelApp):
    def check_channel_shell_request(self, channel: geossh.Channel) -> bool:
        raise RuntimeError("application bug")


def test_exception_in_a_callback_fails_only_that_request(
    server: ServerHarness, caplog: pytest.LogCaptureFixture
) -> None:
    def body(transport: paramiko.Transport) -> tuple[str, bytes]:
        chan = transport.open_session()
        try:
            chan.invoke_shell()
            outcome = "accepted"
        except paramiko.SSHException:
            outcome = "refused"
        return outcome, _echo_works(transport)

    server.interface = _RaisingApp
    assert _session(server, body) == ("refused", b"still here\n")
    assert "application bug" in caplog.text


class _GreedyCallbackApp(ChannelApp):
    def check_channel_exec_request(self, channel: geossh.Channel, command: bytes) -> bool:
        if command == b"greedy":
            channel.sendall(bytes(100_000))  # more than the client's window, from the callback
        return super().check_channel_exec_request(channel, command)


def test_callback_sending_beyond_the_window_fails_instead_of_hanging(
    server: ServerHarness, caplog: pytest.LogCaptureFixture
) -> None:
    def body(transport: paramiko.Transport) -> tuple[str, bytes]:
        chan = transport.open_session(window_size=32768)
        try:
            chan.exec_command("greedy")
            outcome = "accepted"
        except paramiko.SSHException:
            outcome = "refused"
        return outcome, _echo_works(transport)

    server.interface = _GreedyCallbackApp
    assert _session(server, body) == ("refused", b"still here\n")
    assert "would deadlock" in caplog.text


def test_channel_open_flood_is_capped(server: ServerHarness) -> None:
    def body(transport: paramiko.Transport) -> tuple[int, list[int], bytes]:
        opened, codes = [], []
        for _ in range(80):
            try:
                opened.append(transport.open_session())
            except paramiko.ChannelException as exc:
                codes.append(exc.code)
        opened[0].close()
        return len(opened), codes, _echo_works(transport)

    count, codes, alive = _session(server, body)
    assert count == 64
    assert codes == [paramiko.OPEN_FAILED_RESOURCE_SHORTAGE] * 16
    assert alive == b"still here\n"


# -- memory stays bounded ----------------------------------------------------------
class _WatchedSocket:
    """Wraps the server's socket: notes when a write would block (kernel buffer full)."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.blocked = gevent.event.Event()

    def sendall(self, data: bytes) -> None:
        _, writable, _ = select.select([], [self._sock.fileno()], [], 0)
        if not writable:
            self.blocked.set()
        self._sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _queued(transport: geossh.Transport) -> int:
    """Bytes of output the server holds in memory (encoded, and held during a kex)."""
    core = transport._conn.transport
    return core.writer.pending + sum(map(len, core._held))


def test_client_that_never_grants_window(server: ServerHarness) -> None:
    """The client reads the socket but never its channel: no adjusts, so the sender waits."""
    size = 32 << 20
    use_channel_app(server)
    go = threading.Event()

    def body(transport: paramiko.Transport) -> bytes:
        chan = transport.open_session()
        chan.exec_command(f"generate {size}")
        go.wait(30)
        return hashlib.sha256(chan.makefile("rb").read()).digest()

    result = gevent.get_hub().threadpool.spawn(_session, server, body)
    ours = _wait_for_transport(server, sessions=1)
    channels = ours._conn.channels
    while not channels.channels or channels.send_window(min(channels.channels)) > 0:
        gevent.idle()  # until the sender has used up the client's window
    gevent.idle()
    sent = ours._pump.bytes_out if ours._pump else 0
    assert _queued(ours) == 0
    assert sent < 2 * geossh.common.DEFAULT_WINDOW_SIZE + (1 << 20)
    go.set()
    expected = pattern_block(size)
    assert result.get(timeout=60) == hashlib.sha256(expected).digest()


def test_client_that_stops_reading_the_socket(server: ServerHarness) -> None:
    """Huge windows but no reads: the senders of both channels block; memory stays flat."""
    size = 96 << 20  # per channel
    watched: list[_WatchedSocket] = []

    def configure(transport: geossh.Transport) -> None:
        transport.sock = _WatchedSocket(transport.sock)
        watched.append(transport.sock)

    server.configure = configure
    use_channel_app(server)
    resume = threading.Event()
    result = gevent.get_hub().threadpool.spawn(
        lambda: asyncio.run(_paused_reader(server.port, size, resume))
    )
    ours = _wait_for_transport(server, sessions=2)
    watched[0].blocked.wait(30)
    gevent.idle()  # every server greenlet is now parked on a wait
    assert ours._pump is not None
    assert _queued(ours) <= 2 << 20, _queued(ours)
    assert ours._pump.bytes_out < size // 2
    resume.set()
    assert result.get(timeout=60) == [(size, True), (size, True)]


def _wait_for_transport(server: ServerHarness, sessions: int) -> geossh.Transport:
    while not server.servers:
        gevent.idle()
    app = app_of(server)
    app.wait_for(lambda: sum(r[0] == "exec" for r in app.requests) == sessions)
    return server.transports[0]


async def _paused_reader(port: int, size: int, resume: threading.Event) -> list[tuple[int, bool]]:
    import asyncssh

    expected = hashlib.sha256(pattern_block(size))

    class Sink(asyncssh.SSHClientSession):  # type: ignore[misc]
        def __init__(self) -> None:
            self.count, self.digest = 0, hashlib.sha256()

        def data_received(self, data: bytes, datatype: Any) -> None:
            self.count += len(data)
            self.digest.update(data)

    async with asyncssh.connect(
        "127.0.0.1", port, username=USER, password=PASSWORD, known_hosts=None,
        client_keys=None, agent_path=None,
    ) as conn:  # fmt: skip
        opened = [await conn.create_session(Sink, f"generate {size}", encoding=None,
                                            window=1 << 31) for _ in range(2)]  # fmt: skip
        conn._transport.pause_reading()  # stop reading the TCP socket altogether
        await asyncio.get_running_loop().run_in_executor(None, resume.wait)
        conn._transport.resume_reading()
        for chan, _ in opened:
            await chan.wait_closed()
    return [(sink.count, sink.digest.digest() == expected.digest()) for _, sink in opened]


# -- a 1-byte maximum packet ------------------------------------------------------------
class _LargestWrite:
    """Wraps the server's socket: the largest single write (output held in memory at once)."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.largest = 0

    def sendall(self, data: bytes) -> None:
        self.largest = max(self.largest, len(data))
        self._sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def test_one_byte_max_packet_keeps_output_under_the_cap(server: ServerHarness) -> None:
    """asyncssh advertises a 1-byte maximum packet and stops reading for a while.

    Every byte is its own packet (~40 bytes on the wire), as the peer asked,
    but output is encoded a batch at a time behind the output cap: one 64 KiB
    send used to become 65,536 packets (2.5 MiB) queued at once, without a yield.
    """
    size = 64 * 1024
    watched: list[_LargestWrite] = []

    def configure(transport: geossh.Transport) -> None:
        transport.sock = _LargestWrite(transport.sock)
        watched.append(transport.sock)

    server.configure = configure
    use_channel_app(server)
    resume = threading.Event()
    result = gevent.get_hub().threadpool.spawn(
        lambda: asyncio.run(_tiny_packet_reader(server.port, size, resume))
    )
    ours = _wait_for_transport(server, sessions=1)
    assert ours._conn.channels.send_window(min(ours._conn.channels.channels)) <= 64
    resume.set()
    count, intact, largest_packet = result.get(timeout=60)
    assert (count, intact, largest_packet) == (size, True, 1)
    assert watched[0].largest <= (1 << 20) + (64 << 10), watched[0].largest
    assert _queued(ours) == 0


async def _tiny_packet_reader(
    port: int, size: int, resume: threading.Event
) -> tuple[int, bool, int]:
    import asyncssh

    expected = hashlib.sha256(pattern_block(size))

    class Sink(asyncssh.SSHClientSession):  # type: ignore[misc]
        def __init__(self) -> None:
            self.count, self.largest, self.digest = 0, 0, hashlib.sha256()

        def data_received(self, data: bytes, datatype: Any) -> None:
            self.count += len(data)
            self.largest = max(self.largest, len(data))
            self.digest.update(data)

    async with asyncssh.connect(
        "127.0.0.1", port, username=USER, password=PASSWORD, known_hosts=None,
        client_keys=None, agent_path=None,
    ) as conn:  # fmt: skip
        chan, sink = await conn.create_session(
            Sink, f"generate {size}", encoding=None, window=1 << 30, max_pktsize=1
        )
        conn._transport.pause_reading()
        await asyncio.get_running_loop().run_in_executor(None, resume.wait)
        conn._transport.resume_reading()
        await chan.wait_closed()
    return sink.count, sink.digest.digest() == expected.digest(), sink.largest
