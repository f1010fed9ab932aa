"""``Channel`` against a fake ``ChannelPort``: no Transport, no socket, no core."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
import pytest

from geossh._facade.channel import Channel
from geossh._facade.port import ChannelPort
from geossh.errors import LocalProtocolError


class FakeState:
    """The core's record of a channel, as the fake port keeps it."""

    def __init__(self) -> None:
        self.opened = True
        self.remote_id = 3
        self.eof_received = self.eof_sent = False
        self.close_received = self.close_sent = False


class FakePort:
    """Records what a channel asks; the send window is set by the test."""

    def __init__(self, window: int = 1 << 20) -> None:
        self.state = FakeState()
        self.window = window
        self.calls: list[tuple[Any, ...]] = []
        self.closed_channels: list[Channel] = []
        self.connection_greenlet = False
        self.kex_running = False
        self.held = 0  # window the send-ahead limit keeps back (given on lift)

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger("test.channel_port")

    def channel_state(self, chanid: int) -> FakeState:
        return self.state

    def send_window(self, chanid: int) -> int:
        return self.window

    def send_held_back(self, chanid: int) -> bool:
        return self.window == 0 and self.held > 0

    def lift_send_ahead(self, chanid: int) -> bool:
        held = self.send_held_back(chanid)
        self.calls.append(("lift", chanid))
        self.window, self.held = self.window + self.held, 0
        return held

    def send_data(self, chanid: int, data: memoryview, stream: int) -> int:
        if ("close", chanid) in self.calls:
            raise LocalProtocolError("channel closed")
        sent = min(len(data), self.window)
        self.window -= sent
        self.calls.append(("data", chanid, bytes(data[:sent]), stream))
        return sent

    def consume(self, chanid: int, length: int) -> None:
        self.calls.append(("consume", chanid, length))

    def send_request(self, chanid: int, kind: str, want_reply: bool, data: bytes) -> None:
        self.calls.append(("request", chanid, kind, want_reply, data))

    def send_eof(self, chanid: int) -> None:
        if not self.state.eof_sent:
            self.state.eof_sent = True
            self.calls.append(("eof", chanid))

    def close(self, chanid: int) -> None:
        self.send_eof(chanid)
        self.state.close_sent = True
        self.calls.append(("close", chanid))

    def flush_soon(self) -> None:
        self.calls.append(("flush",))

    def in_connection_greenlet(self) -> bool:
        return self.connection_greenlet

    def wait_clear_to_send(self, gave_up: Callable[[], bool], block: bool) -> None:
        if self.kex_running and not block:
            raise TimeoutError()

    def channel_closed(self, channel: Any) -> None:
        self.closed_channels.append(channel)

    def sent(self) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] != "flush"]


def _channel(port: FakePort) -> Channel:
    typed: ChannelPort = port  # the fake satisfies the protocol (checked by mypy)
    return Channel(7, typed)


def test_send_queues_data_and_flushes() -> None:
    port = FakePort()
    chan = _channel(port)
    assert chan.send(b"hello") == 5
    chan.sendall_stderr(b"oops")
    assert port.sent() == [("data", 7, b"hello", 0), ("data", 7, b"oops", 1)]
    assert ("flush",) in port.calls


def test_a_str_send_stops_at_a_character_boundary_inside_the_window() -> None:
    port = FakePort(window=2)
    chan = _channel(port)
    assert chan.send("aé") == 1  # 'é' is two bytes: only 'a' fits
    assert port.sent() == [("data", 7, b"a", 0)]


def test_send_waits_for_window_and_a_nonblocking_one_times_out() -> None:
    port = FakePort(window=0)
    chan = _channel(port)
    chan.settimeout(0.0)
    with pytest.raises(TimeoutError):
        chan.send(b"x")
    chan.settimeout(None)
    sender = gevent.spawn(chan.send, b"data")
    gevent.sleep(0)
    assert not sender.dead  # parked on the window
    port.window = 10
    chan._window_opened()
    assert sender.get(timeout=5) == 4


def test_the_connection_greenlet_never_waits_for_window() -> None:
    port = FakePort(window=0)
    port.connection_greenlet = True
    with pytest.raises(TimeoutError, match="deadlock"):
        _channel(port).send(b"x")


def test_a_send_that_cannot_wait_lifts_the_send_ahead_limit() -> None:
    for nonblocking, callback in ((True, False), (False, True)):
        port = FakePort(window=0)
        port.held = 100  # the peer's window has room; only the limit holds it back
        port.connection_greenlet = callback
        chan = _channel(port)
        if nonblocking:
            chan.settimeout(0.0)
        assert chan.send(b"abc") == 3
        assert port.sent() == [("lift", 7), ("data", 7, b"abc", 0)]


def test_send_ready_lifts_the_send_ahead_limit() -> None:
    port = FakePort(window=0)
    chan = _channel(port)
    assert not chan.send_ready()  # the peer's window is shut: nothing to lift
    port.held = 100
    assert chan.send_ready()
    assert port.window == 100 and ("lift", 7) in port.calls


def test_a_held_back_send_takes_the_adjust_when_it_comes() -> None:
    port = FakePort(window=0)
    port.held = 100
    chan = _channel(port)
    sender = gevent.spawn(chan.send, b"data")
    gevent.sleep(0)
    assert not sender.dead
    port.window, port.held = 10, 0  # the peer's adjust arrived
    chan._window_opened()
    assert sender.get(timeout=5) == 4
    assert ("lift", 7) not in port.calls


def test_a_held_back_send_without_an_adjust_lifts_the_limit() -> None:
    # The peer adjusts only past more than the limit lets out: the send must
    # not wait forever, nor raise, whether or not it has a timeout.
    for timeout in (None, 30.0, 0.05):
        port = FakePort(window=0)
        port.held = 100
        chan = _channel(port)
        chan.settimeout(timeout)
        sender = gevent.spawn(chan.send, b"data")
        assert sender.get(timeout=10) == 4
        assert port.sent() == [("lift", 7), ("data", 7, b"data", 0)]


def test_a_send_without_window_still_times_out() -> None:
    port = FakePort(window=0)  # nothing held back: the peer's window is shut
    chan = _channel(port)
    chan.settimeout(0.05)
    with pytest.raises(TimeoutError):
        chan.send(b"x")
    assert ("lift", 7) not in port.calls


def test_a_nonblocking_send_during_key_exchange_times_out() -> None:
    port = FakePort()
    port.kex_running = True
    chan = _channel(port)
    chan.settimeout(0.0)
    with pytest.raises(TimeoutError):
        chan.send(b"x")
    assert port.sent() == []


def test_reads_grant_window_through_the_port() -> None:
    port = FakePort()
    chan = _channel(port)
    chan._feed(b"abcdef", 0)
    assert chan.recv(4) == b"abcd"
    assert chan.recv(4) == b"ef"
    assert port.sent() == [("consume", 7, 4), ("consume", 7, 2)]


def test_dropped_extended_data_is_consumed() -> None:
    port = FakePort()
    _channel(port)._feed_parts((b"xyz",), 2)
    assert port.sent() == [("consume", 7, 3)]


def test_eof_close_and_sends_after_them() -> None:
    port = FakePort()
    chan = _channel(port)
    chan.shutdown_write()
    chan.shutdown_write()
    assert chan.send(b"late") == 0
    chan.close()
    chan.close()
    assert port.sent() == [("eof", 7), ("close", 7)]
    with pytest.raises(OSError):
        chan.send(b"x")


def test_requests_and_their_replies() -> None:
    port = FakePort()
    chan = _channel(port)
    asker = gevent.spawn(chan.send_request, "keepalive@openssh.com", b"", True)
    gevent.sleep(0)
    assert port.sent() == [("request", 7, "keepalive@openssh.com", True, b"")]
    chan._reply_received(True)
    assert asker.get(timeout=5) is True
    chan.send_exit_status(3)
    assert port.sent()[-1] == ("request", 7, "exit-status", False, b"\x00\x00\x00\x03")


def test_a_close_is_reported_once_to_the_observer() -> None:
    port = FakePort()
    chan = _channel(port)
    chan._observed = True
    chan.close()
    chan._mark_closed()
    assert port.closed_channels == [chan]


def test_a_detached_channel_refuses_to_send() -> None:
    chan = Channel(1)
    assert chan.remote_chanid == 0 and not chan.active
    with pytest.raises(OSError):
        chan.send(b"x")
    assert chan.send_ready()
    assert chan.send_request("x") is None


def test_state_reads_through_to_the_core_record() -> None:
    port = FakePort()
    chan = _channel(port)
    assert chan.active and not chan.closed and not chan.eof_received and not chan.eof_sent
    assert chan.remote_chanid == 3
    port.state.eof_received = True  # the core parsed the peer's EOF
    assert chan.eof_received and not chan.closed
    port.state.close_received = port.state.close_sent = True  # and its CLOSE (answered)
    assert chan.closed and chan.eof_sent  # a CLOSE sent means no more data
    assert chan.active  # paramiko: stays set after the close
    with pytest.raises(OSError):
        chan.send(b"x")


def test_shutdown_read_reports_eof_received_without_telling_the_peer() -> None:
    port = FakePort()
    chan = _channel(port)
    chan.shutdown_read()
    assert chan.eof_received and not port.state.eof_received
    assert port.sent() == []
    assert chan.send(b"ok") == 2  # writing still works


def test_a_channel_closed_before_it_was_opened_sends_nothing() -> None:
    port = FakePort()
    port.state.opened = False  # a handler's prepare() still runs
    chan = _channel(port)
    assert not chan.active
    chan.shutdown_write()
    chan.close()
    assert chan.closed and port.sent() == []


def test_a_channel_of_an_ended_connection_is_closed() -> None:
    port = FakePort()
    chan = _channel(port)
    chan._mark_closed()  # the Transport ended: the core never saw a CLOSE
    assert chan.closed and not port.state.close_sent
    assert chan.send_ready() and chan.recv(1) == b""
