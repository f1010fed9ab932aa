"""The connection protocol core (``ChannelLayer``) driven with a fake transport.

No sockets, no gevent: messages go in as payloads, and what the core sends
is recorded by ``FakeTransport``. Also covers the terminal-modes helper.
"""

from __future__ import annotations

import struct
from collections import deque

import pytest
from hypothesis import given, settings, strategies as st

from geossh.errors import LocalProtocolError, RemoteProtocolError
from geossh.proto import events as ev, wire
from geossh.proto.channels import SEND_LIMIT, SEND_PACKETS, ChannelLayer
from geossh.proto.config import ServerConfig
from geossh.proto.constants import MSG, OpenFailure
from geossh.proto.window import MAX_OUT_PACKET, InboundWindow
from geossh.services.pty import PtyModesError, decode_modes, encode_modes

WINDOW = 64 * 1024
PACKET = 8 * 1024


class FakeTransport:
    """Records every payload the core sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, payload: bytes) -> None:
        self.sent.append(bytes(payload))

    def send_data(self, head: bytes, data: memoryview) -> None:
        self.sent.append(head + bytes(data))

    def pop(self) -> list[bytes]:
        out, self.sent = self.sent, []
        return out


def make_layer(**config: int) -> tuple[ChannelLayer, FakeTransport, deque[ev.Event]]:
    cfg = ServerConfig(default_window_size=WINDOW, default_max_packet_size=PACKET)
    for key, value in config.items():
        setattr(cfg, key, value)
    transport = FakeTransport()
    events: deque[ev.Event] = deque()
    return ChannelLayer(cfg, transport, events), transport, events  # type: ignore[arg-type]


# -- message builders ---------------------------------------------------------
def open_msg(kind: str = "session", remote: int = 7, window: int = 1 << 20,
             packet: int = 32768, extra: bytes = b"") -> bytes:  # fmt: skip
    return (
        bytes((MSG.CHANNEL_OPEN,)) + wire.string(kind) + wire.u32(remote) + wire.u32(window)
        + wire.u32(packet) + extra
    )  # fmt: skip


def data_msg(local: int, data: bytes) -> bytes:
    return struct.pack(">BII", MSG.CHANNEL_DATA, local, len(data)) + data


def ext_msg(local: int, data: bytes, stream: int = 1) -> bytes:
    return struct.pack(">BIII", MSG.CHANNEL_EXTENDED_DATA, local, stream, len(data)) + data


def adjust_msg(local: int, increment: int) -> bytes:
    return struct.pack(">BII", MSG.CHANNEL_WINDOW_ADJUST, local, increment)


def simple(msg: MSG, local: int) -> bytes:
    return struct.pack(">BI", msg, local)


def request_msg(local: int, kind: str, want_reply: bool, body: bytes = b"") -> bytes:
    return (
        struct.pack(">BI", MSG.CHANNEL_REQUEST, local) + wire.string(kind)
        + wire.boolean(want_reply) + body
    )  # fmt: skip


def opened(layer: ChannelLayer, events: deque[ev.Event], **kwargs: int) -> int:
    """Open a channel from the peer and accept it; return its local id."""
    layer.handle(open_msg(**kwargs))
    event = events.pop()
    assert isinstance(event, ev.ChannelOpenRequested)
    layer.accept_channel(event.channel_id)
    return event.channel_id


# -- opening ------------------------------------------------------------------
def test_open_accept_sends_confirmation_with_our_window() -> None:
    layer, transport, events = make_layer()
    layer.handle(open_msg("session", remote=42, extra=b"xyz"))
    event = events.pop()
    assert event == ev.ChannelOpenRequested(0, "session", b"xyz")
    layer.accept_channel(0)
    (confirm,) = transport.pop()
    assert confirm == struct.pack(">BIIII", MSG.CHANNEL_OPEN_CONFIRMATION, 42, 0, WINDOW, PACKET)


def test_open_reject_sends_failure_and_frees_the_id() -> None:
    layer, transport, events = make_layer()
    layer.handle(open_msg(remote=9))
    layer.reject_channel(events.pop().channel_id, OpenFailure.UNKNOWN_CHANNEL_TYPE, "nope")
    (failure,) = transport.pop()
    reader = wire.Reader(failure, 1)
    assert failure[0] == MSG.CHANNEL_OPEN_FAILURE
    assert (reader.u32(), reader.u32(), reader.text(), reader.text()) == (9, 3, "nope", "en")
    assert layer.channels == {}
    with pytest.raises(LocalProtocolError):
        layer.accept_channel(0)


def test_ids_count_up_and_skip_ids_in_use() -> None:
    layer, _, events = make_layer()
    ids = [opened(layer, events, remote=n) for n in range(3)]
    assert ids == [0, 1, 2]
    layer._next_id = 1  # wrap-around: 1 and 2 are still in use
    assert opened(layer, events) == 3


def test_channel_cap_answers_resource_shortage() -> None:
    layer, transport, events = make_layer(max_channels=2)
    opened(layer, events)
    opened(layer, events)
    transport.pop()
    layer.handle(open_msg(remote=99))
    assert not events
    (failure,) = transport.pop()
    assert failure[0] == MSG.CHANNEL_OPEN_FAILURE
    assert struct.unpack_from(">II", failure, 1) == (99, OpenFailure.RESOURCE_SHORTAGE)


def test_server_opened_channel_confirmation_and_failure() -> None:
    layer, transport, events = make_layer()
    local = layer.open_channel("x11", wire.string("127.0.0.1") + wire.u32(6000))
    (sent,) = transport.pop()
    reader = wire.Reader(sent, 1)
    assert (reader.text(), reader.u32(), reader.u32(), reader.u32()) == ("x11", local, WINDOW,
                                                                          PACKET)  # fmt: skip
    with pytest.raises(RemoteProtocolError):  # data before the peer confirmed
        layer.handle(data_msg(local, b"x"))
    layer.handle(struct.pack(">BIIII", MSG.CHANNEL_OPEN_CONFIRMATION, local, 5, 100, 50))
    assert events.pop() == ev.ChannelOpenConfirmed(local, b"")
    assert layer.send_window(local) == 100
    other = layer.open_channel("session", b"")
    layer.handle(
        struct.pack(">BII", MSG.CHANNEL_OPEN_FAILURE, other, 1)
        + wire.string("no")
        + wire.string("")
    )
    assert events.pop() == ev.ChannelOpenFailed(other, 1, "no")
    with pytest.raises(RemoteProtocolError):  # a reply for an open we never sent
        layer.handle(struct.pack(">BIIII", MSG.CHANNEL_OPEN_CONFIRMATION, 77, 5, 100, 50))


# -- data and windows -----------------------------------------------------------
def test_data_and_stderr_are_delivered() -> None:
    layer, _, events = make_layer()
    chan = opened(layer, events)
    layer.handle(data_msg(chan, b"hello"))
    layer.handle(ext_msg(chan, b"err"))
    assert list(events) == [ev.ChannelDataReceived(chan, b"hello", 0),
                            ev.ChannelDataReceived(chan, b"err", 1)]  # fmt: skip


def test_data_beyond_window_is_a_protocol_error() -> None:
    layer, _, events = make_layer()
    chan = opened(layer, events)
    for _ in range(WINDOW // PACKET):
        layer.handle(data_msg(chan, bytes(PACKET)))
    with pytest.raises(RemoteProtocolError, match="beyond a window"):
        layer.handle(data_msg(chan, b"x"))


def test_packet_bigger_than_advertised_is_a_protocol_error() -> None:
    layer, _, events = make_layer()
    chan = opened(layer, events)
    with pytest.raises(RemoteProtocolError, match="maximum"):
        layer.handle(ext_msg(chan, bytes(PACKET + 1)))


@pytest.mark.parametrize(
    "payload",
    [
        struct.pack(">BII", MSG.CHANNEL_DATA, 0, 10) + b"short",
        struct.pack(">BI", MSG.CHANNEL_DATA, 0),
        struct.pack(">BIII", MSG.CHANNEL_EXTENDED_DATA, 0, 1, 1),
        struct.pack(">B", MSG.CHANNEL_EOF),
        struct.pack(">BIB", MSG.CHANNEL_EOF, 0, 0),
        struct.pack(">BI", MSG.CHANNEL_WINDOW_ADJUST, 0),
        struct.pack(">BI", MSG.CHANNEL_REQUEST, 0) + wire.string("exec"),
    ],
)
def test_malformed_messages_are_protocol_errors(payload: bytes) -> None:
    layer, _, events = make_layer()
    opened(layer, events)
    with pytest.raises(RemoteProtocolError):
        layer.handle(payload)


def test_consuming_half_the_window_sends_an_adjust() -> None:
    layer, transport, events = make_layer()
    chan = opened(layer, events, remote=3)
    transport.pop()
    for _ in range(4):
        layer.handle(data_msg(chan, bytes(PACKET)))
    layer.consume(chan, 3 * PACKET)
    assert transport.pop() == []
    layer.consume(chan, PACKET)
    assert transport.pop() == [adjust_msg(3, 4 * PACKET)]
    # The granted window is usable again: a full window more arrives fine.
    for _ in range(4 + 4):
        layer.handle(data_msg(chan, bytes(PACKET)))


def test_no_adjust_after_eof() -> None:
    layer, transport, events = make_layer()
    chan = opened(layer, events)
    layer.handle(data_msg(chan, bytes(PACKET)))
    layer.handle(simple(MSG.CHANNEL_EOF, chan))
    transport.pop()
    layer.consume(chan, WINDOW)
    assert transport.pop() == []


def test_data_after_eof_is_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    layer, _, events = make_layer()
    chan = opened(layer, events)
    layer.handle(simple(MSG.CHANNEL_EOF, chan))
    layer.handle(simple(MSG.CHANNEL_EOF, chan))  # a repeated EOF is harmless
    assert list(events) == [ev.ChannelEOFReceived(chan)]
    events.clear()
    layer.handle(data_msg(chan, b"late"))
    layer.handle(ext_msg(chan, b"later"))
    assert not events
    assert "data after EOF" in caplog.text
    with pytest.raises(RemoteProtocolError, match="beyond a window"):  # the window still binds
        for _ in range(WINDOW // PACKET):
            layer.handle(data_msg(chan, bytes(PACKET)))


def test_window_adjust_opens_the_window_and_overflow_disconnects() -> None:
    layer, _, events = make_layer()
    chan = opened(layer, events, window=10)
    layer.handle(adjust_msg(chan, 90))
    assert events.pop() == ev.ChannelWindowOpened(chan)
    assert layer.send_window(chan) == 100
    layer.handle(adjust_msg(chan, 0xFFFFFFFF - 100))
    with pytest.raises(RemoteProtocolError, match="overflows"):
        layer.handle(adjust_msg(chan, 1))


def test_send_data_honours_window_packet_size_and_limit() -> None:
    layer, transport, events = make_layer()
    chan = opened(layer, events, remote=4, window=10_000, packet=4096)
    transport.pop()
    assert layer.send_data(chan, bytes(range(256)) * 50) == 10_000
    packets = transport.pop()
    assert [len(p) - 9 for p in packets] == [4096, 4096, 1808]
    assert packets[0][:9] == struct.pack(">BII", MSG.CHANNEL_DATA, 4, 4096)
    assert b"".join(p[9:] for p in packets) == (bytes(range(256)) * 50)[:10_000]
    assert layer.send_data(chan, b"more") == 0  # window exhausted
    layer.handle(adjust_msg(chan, 0xFFFFFFF))
    assert layer.send_data(chan, bytes(SEND_LIMIT * 2)) == SEND_LIMIT
    assert layer.send_data(chan, b"err", stream=1) == 3
    assert transport.sent[-1] == struct.pack(">BIII", MSG.CHANNEL_EXTENDED_DATA, 4, 1, 3) + b"err"


def test_peer_max_packet_is_clamped() -> None:
    layer, transport, events = make_layer()
    chan = opened(layer, events, window=1 << 30, packet=0xFFFFFFFF)
    transport.pop()
    layer.send_data(chan, bytes(MAX_OUT_PACKET + 1))
    assert [len(p) - 9 for p in transport.pop()] == [MAX_OUT_PACKET, 1]


@pytest.mark.parametrize("packet", [1, 7, 4096])
def test_tiny_peer_max_packet_is_honoured_a_bounded_batch_at_a_time(packet: int) -> None:
    """A 1-byte maximum packet must not turn one call into 262,144 packets (9 MiB encoded)."""
    layer, transport, events = make_layer()
    chan = opened(layer, events, window=1 << 30, packet=packet)
    transport.pop()
    expected = min(SEND_LIMIT, packet * SEND_PACKETS)
    assert layer.send_window(chan) == expected  # what one send_data call will take
    data = bytes(range(256)) * (4 * SEND_LIMIT // 256)
    sent = 0
    for _ in range(4):
        assert layer.send_data(chan, data[sent:]) == expected
        packets = transport.pop()
        assert len(packets) <= SEND_PACKETS
        assert all(len(p) - 9 <= packet for p in packets)  # the peer's maximum, always
        assert b"".join(p[9:] for p in packets) == data[sent : sent + expected]
        sent += expected


def test_sending_after_eof_or_close_is_refused() -> None:
    layer, _, events = make_layer()
    chan = opened(layer, events)
    layer.send_eof(chan)
    with pytest.raises(LocalProtocolError):
        layer.send_data(chan, b"x")
    layer.close(chan)
    with pytest.raises(LocalProtocolError):
        layer.send_request(chan, "exit-status", False, wire.u32(0))


# -- unknown and closed channels ------------------------------------------------
@pytest.mark.parametrize(
    "payload",
    [
        data_msg(5, b"x"),
        ext_msg(5, b"x"),
        simple(MSG.CHANNEL_EOF, 5),
        simple(MSG.CHANNEL_CLOSE, 5),
        request_msg(5, "exec", True, wire.string("ls")),
    ],
)
def test_messages_for_unknown_channels_disconnect(payload: bytes) -> None:
    layer, _, events = make_layer()
    opened(layer, events)
    with pytest.raises(RemoteProtocolError, match="nonexistent channel 5"):
        layer.handle(payload)


def test_adjusts_and_replies_for_unknown_channels_are_ignored() -> None:
    layer, transport, events = make_layer()
    layer.handle(adjust_msg(5, 100))
    layer.handle(simple(MSG.CHANNEL_SUCCESS, 5))
    layer.handle(simple(MSG.CHANNEL_FAILURE, 5))
    assert not events and not transport.sent


def test_messages_crossing_our_close_are_dropped() -> None:
    layer, transport, events = make_layer()
    chan = opened(layer, events, remote=8)
    transport.pop()
    layer.close(chan)
    assert transport.pop() == [simple(MSG.CHANNEL_EOF, 8), simple(MSG.CHANNEL_CLOSE, 8)]
    env = request_msg(chan, "env", True, wire.string("A") + wire.string("B"))
    for payload in (data_msg(chan, b"x"), simple(MSG.CHANNEL_EOF, chan), adjust_msg(chan, 5), env):
        layer.handle(payload)
    assert not events
    assert transport.pop() == []  # no reply to a request after our CLOSE
    layer.handle(simple(MSG.CHANNEL_CLOSE, chan))
    assert events.pop() == ev.ChannelClosed(chan)
    assert transport.pop() == []
    with pytest.raises(RemoteProtocolError):  # the id is gone now
        layer.handle(data_msg(chan, b"x"))


def test_peer_close_is_answered_and_frees_the_channel() -> None:
    layer, transport, events = make_layer()
    chan = opened(layer, events, remote=8)
    transport.pop()
    layer.handle(simple(MSG.CHANNEL_CLOSE, chan))
    assert transport.pop() == [simple(MSG.CHANNEL_CLOSE, 8)]
    assert events.pop() == ev.ChannelClosed(chan)
    layer.close(chan)  # the application closing afterwards sends nothing
    layer.send_eof(chan)
    assert transport.pop() == []


# -- requests -------------------------------------------------------------------
def test_requests_and_replies() -> None:
    layer, transport, events = make_layer()
    chan = opened(layer, events, remote=6)
    transport.pop()
    layer.handle(request_msg(chan, "exec", True, wire.string("ls -l")))
    assert events.pop() == ev.ChannelRequestReceived(chan, "exec", True, wire.string("ls -l"))
    layer.reply_channel_request(chan, True)
    layer.reply_channel_request(chan, False)
    assert transport.pop() == [simple(MSG.CHANNEL_SUCCESS, 6), simple(MSG.CHANNEL_FAILURE, 6)]


def test_our_requests_get_reply_events_and_stray_replies_are_ignored() -> None:
    layer, transport, events = make_layer()
    chan = opened(layer, events, remote=6)
    transport.pop()
    layer.send_request(chan, "keepalive@openssh.com", True)
    (sent,) = transport.pop()
    reader = wire.Reader(sent, 5)
    assert (reader.text(), reader.boolean()) == ("keepalive@openssh.com", True)
    layer.handle(simple(MSG.CHANNEL_FAILURE, chan))
    assert events.pop() == ev.ChannelReplyReceived(chan, False)
    layer.handle(simple(MSG.CHANNEL_SUCCESS, chan))  # nobody asked
    assert not events


def test_global_requests() -> None:
    layer, transport, events = make_layer(max_pending_global_requests=2)
    body = bytes((MSG.GLOBAL_REQUEST,)) + wire.string("keepalive@openssh.com") + wire.boolean(True)
    layer.handle(body)
    assert events.pop() == ev.GlobalRequestReceived("keepalive@openssh.com", True, b"")
    layer.reply_global_request(False)
    assert transport.pop() == [bytes((MSG.REQUEST_FAILURE,))]
    with pytest.raises(LocalProtocolError):
        layer.reply_global_request(True)
    layer.handle(body)
    layer.handle(body)
    with pytest.raises(RemoteProtocolError, match="too many"):
        layer.handle(body)


def test_global_replies() -> None:
    layer, _, events = make_layer()
    layer.handle(bytes((MSG.REQUEST_SUCCESS,)))  # nobody asked: ignored
    assert not events
    layer.send_global_request("keepalive@lag.net", True)
    layer.handle(bytes((MSG.REQUEST_SUCCESS,)) + wire.u32(5))
    assert events.pop() == ev.GlobalReplyReceived(True, wire.u32(5))


# -- properties -----------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(90, 100), st.binary(max_size=40)), max_size=12))
def test_fuzzed_connection_messages_parse_or_raise_remote_error(
    messages: list[tuple[int, bytes]],
) -> None:
    layer, _, events = make_layer()
    opened(layer, events)
    for msg, body in messages:
        payload = bytes((msg,)) + struct.pack(">I", body[0] % 2 if body else 0) + body[1:]
        try:
            layer.handle(payload)
        except RemoteProtocolError:
            return


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, PACKET)), max_size=60))
def test_inbound_window_never_grants_more_than_its_size(steps: list[tuple[bool, int]]) -> None:
    window = InboundWindow(WINDOW, PACKET)
    unread = 0
    for is_read, amount in steps:
        if is_read:
            amount = min(amount, unread)
            unread -= amount
            window.consume(amount)
        elif amount <= window.remaining:
            window.receive(amount)
            unread += amount
        assert 0 <= window.remaining <= WINDOW
        assert window.remaining + unread <= WINDOW


# -- terminal modes (RFC 4254 §8) ---------------------------------------------
def test_decode_modes_names_known_opcodes() -> None:
    blob = encode_modes({"VINTR": 3, "ECHO": 1, "TTY_OP_ISPEED": 38400, 200 - 100: 7})
    assert decode_modes(blob) == {"VINTR": 3, "ECHO": 1, "TTY_OP_ISPEED": 38400, 100: 7}
    assert decode_modes(b"") == {}
    assert decode_modes(b"\x00garbage after the end") == {}
    # An undefined opcode (160..255) stops parsing, as the RFC says.
    assert decode_modes(encode_modes({"ECHO": 0})[:-1] + b"\xa0\x01") == {"ECHO": 0}


@pytest.mark.parametrize("blob", [b"\x35\x00\x00\x01", b"\x01", b"\x35" * 5000])
def test_decode_modes_rejects_malformed_blobs(blob: bytes) -> None:
    with pytest.raises(PtyModesError):
        decode_modes(blob)


@given(st.dictionaries(st.integers(1, 159), st.integers(0, 0xFFFFFFFF), max_size=40))
def test_modes_round_trip(modes: dict[int, int]) -> None:
    decoded = decode_modes(encode_modes(modes))
    assert sorted(decoded.values()) == sorted(modes.values())
    assert len(decoded) == len(modes)
